-- Unschedule a group unless someone rescheduled it since (score changed).
-- KEYS: the schedule. ARGV: the group, the score (lease end) its flush set.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
