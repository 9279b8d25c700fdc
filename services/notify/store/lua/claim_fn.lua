-- Claim a notification: free, failed before, or sent more than repeat_interval
-- ago -> claimed (returns the first try's time); otherwise returns the current
-- state ('sent:<time>' or 'claimed:<time>'). Times come from the caller's clock.
-- (Prepended to the scripts that claim: nflog_claim.lua, group_add.lua.)
local function claim(key, now, claim_s, repeat_s)
  local v = redis.call('GET', key)
  if v and string.sub(v, 1, 5) == 'sent:' and
     tonumber(now) - tonumber(string.sub(v, 6)) >= tonumber(repeat_s) then
    v = nil
  end
  if not v then
    redis.call('SET', key, 'claimed:' .. now, 'EX', claim_s)
    return now
  end
  if string.sub(v, 1, 7) == 'failed:' then
    local first = string.sub(v, 8)
    redis.call('SET', key, 'claimed:' .. first, 'EX', claim_s)
    return first
  end
  return v
end
