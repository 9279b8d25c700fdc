-- Incident bookkeeping for one alert: a firing alert with no open incident opens
-- a new one (seq+1); a resolved one closes it. Returns the incident number.
-- KEYS: the alert's incident hash, its last document. ARGV: status, document, now, ttl.
local state = redis.call('HGET', KEYS[1], 'state')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if ARGV[1] == 'firing' then
  if state ~= 'open' then
    seq = seq + 1
    redis.call('HSET', KEYS[1], 'seq', seq, 'state', 'open', 'opened_at', ARGV[3])
    redis.call('HDEL', KEYS[1], 'acked_by', 'acked_at', 'resolved_by')
  end
else
  if seq == 0 then seq = 1 end
  if state ~= 'resolved' then
    redis.call('HSET', KEYS[1], 'seq', seq, 'state', 'resolved', 'resolved_at', ARGV[3])
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return seq
