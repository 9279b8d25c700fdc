-- Take an alert out of a group (resolved by hand); bump the version if it was there.
-- KEYS: the group's alerts and meta hashes. ARGV: the alert id.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'ver', 1)
  return 1
end
return 0
