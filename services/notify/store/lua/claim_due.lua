-- Lease due members of a schedule: score <= now -> score = now + lease.
-- KEYS: the schedule. ARGV: now, lease end, limit.
-- Returns {the members leased, the earliest score left} (only the first when empty).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {due, first[2]}
