-- Delete a finished group unless an alert arrived meanwhile (version changed).
-- KEYS: the group's alerts and meta hashes. ARGV: the version the flush saw.
if (redis.call('HGET', KEYS[2], 'ver') or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
