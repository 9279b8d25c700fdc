-- Add or update a group's alerts of one batch (in order), bumping the version for
-- each whose content changed. KEYS: the group's alerts and meta hashes, then the
-- notification log keys to claim if the group is new (due at once: its
-- notification is decided before it is recorded). ARGV: route id, group labels,
-- ttl, n, n (alert id, member) pairs, then (with keys to claim) now, claim_s,
-- repeat_interval. Returns {1 when the group is new else 0, the group's version,
-- and for a new group each claim's answer}.
local new = redis.call('EXISTS', KEYS[2]) == 0
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('HINCRBY', KEYS[2], 'ver', 1)
  end
end
redis.call('HSETNX', KEYS[2], 'route', ARGV[1])
redis.call('HSETNX', KEYS[2], 'labels', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local out = {0, redis.call('HGET', KEYS[2], 'ver') or '0'}
if not new then return out end
out[1] = 1
local at = 5 + 2 * n
for k = 3, #KEYS do
  out[#out + 1] = claim(KEYS[k], ARGV[at], ARGV[at + 1], ARGV[at + 2])
end
return out
