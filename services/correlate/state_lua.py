"""Correlation state: the Lua scripts :class:`RedisState` registers.

``_APPLY_LUA`` applies a list of window and geo ops in order, atomically, and
returns what each read back; ``_CLAIM_LUA`` marks alerts raised (and groups
suppressed), atomically, and returns 1 or 0 per claim. The comment above each
script states its KEYS and ARGV; the script text is the protocol the Python
side encodes (see ``state_ops._args``) and must change only together with it.
"""

# One call applies a list of ops, in order. KEYS[i] is op i's first key (window:
# the hash ``...:h``, its sorted set is ``...:z``; geo: the GEO set ``...:g``, with
# ``...:h`` and ``...:z``): every key an op touches shares the hash tag of the
# key declared for it. ARGV[1] is a JSON array of the ops' arguments:
#   window: [0, member, t, pointer, lookback, keep, ttl, neighbours]
#   geo:    [1, member, lon, lat, pointer, retain_until, t, radius, ttl]
# (coordinates and radius as strings: they reach GEOADD/GEOSEARCH unrounded).
# ARGV[3] is the watermark (event time, ms; 0: none yet): state is trimmed
# behind it, never behind a group's own newest observation, so an event read
# early from a partition ahead does not drop what a partition behind still needs.
# ARGV[4]: an op whose observation is already there (a replay) and older than
# this reads nothing back (everything it could complete was decided when it came).
# Returns, per op, the pointers it read back, or 1 for a window holding only the
# op's own observation (or a replayed old one).
_APPLY_LUA = """
local ops = cjson.decode(ARGV[1])
local maxread = tonumber(ARGV[2])
local wm = tonumber(ARGV[3])
local replayed = tonumber(ARGV[4])
local out = {}
for i, op in ipairs(ops) do
  local k1 = KEYS[i]
  local base = string.sub(k1, 1, -2)
  local member = op[2]
  if op[1] == 0 then
    local h, z = k1, base .. 'z'
    local t, look, keep, ttl, k = op[3], op[5], op[6], op[7], op[8]
    local new = redis.call('HSETNX', h, member, op[4]) == 1
    if new then
      redis.call('ZADD', z, t, member)
    end
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
    if (not new and t < replayed) or redis.call('ZCARD', z) == 1 then
      -- the op's own observation only (a new group, most of them): nothing to
      -- trim, nothing else to read; 1 tells the caller so
      out[i] = 1
    else
      local top = redis.call('ZREVRANGE', z, 0, 0, 'WITHSCORES')
      local cutoff = '(' .. tostring(math.min(tonumber(top[2]), wm) - keep)
      local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 1000)
      if #old > 0 then
        redis.call('ZREM', z, unpack(old))
        redis.call('HDEL', h, unpack(old))
      end
      local ms
      if k > 0 then
        -- only the k neighbours on each side (by event time): a threshold run needs no more
        local r = redis.call('ZRANK', z, member)
        ms = r and redis.call('ZRANGE', z, math.max(0, r - k), r + k) or {}
      else
        ms = redis.call('ZRANGEBYSCORE', z, t - look, t + look, 'LIMIT', 0, maxread)
      end
      if #ms == 0 then out[i] = {} else out[i] = redis.call('HMGET', h, unpack(ms)) end
    end
  else
    local g, h, z = k1, base .. 'h', base .. 'z'
    local lon, lat, retain, now, ttl = op[3], op[4], op[6], op[7], op[9]
    local new = redis.call('HSETNX', h, member, op[5]) == 1
    if new then
      redis.call('GEOADD', g, lon, lat, member)
      redis.call('ZADD', z, retain, member)
    end
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. tostring(math.min(now, wm)),
                           'LIMIT', 0, 1000)
    if #old > 0 then
      redis.call('ZREM', z, unpack(old))
      redis.call('ZREM', g, unpack(old))
      redis.call('HDEL', h, unpack(old))
    end
    redis.call('PEXPIRE', g, ttl)
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
    if not new and now < replayed then
      out[i] = {}
    else
      local near = redis.call('GEOSEARCH', g, 'FROMLONLAT', lon, lat, 'BYRADIUS', op[8], 'm',
                              'ASC', 'COUNT', maxread)
      local res = {}
      for _, m in ipairs(near) do
        if m ~= member then
          local p = redis.call('HGET', h, m)
          if p then table.insert(res, p) end
        end
      end
      out[i] = res
    end
  end
end
return out
"""

# Claims, in order: KEYS[2i-1] the "fired" key, KEYS[2i] the suppression key;
# ARGV[1] a JSON array of [t, suppress_ms, ttl, retry], ARGV[2] the claimer's
# token, which a fired key holds. Returns 1 (claimed) or 0 each. A claim retried
# (retry 1) after a call that failed is claimed again if its fired key holds the
# token: that call set it (on a cluster, other nodes' calls ran when one failed).
_CLAIM_LUA = """
local claims = cjson.decode(ARGV[1])
local token = ARGV[2]
local out = {}
for i, c in ipairs(claims) do
  local fired, skey = KEYS[2 * i - 1], KEYS[2 * i]
  local t, s, ttl = c[1], c[2], c[3]
  out[i] = 1
  if redis.call('EXISTS', fired) == 1 then
    out[i] = 0
    if c[4] == 1 and redis.call('GET', fired) == token then out[i] = 1 end
  else
    if s > 0 then
      local last = redis.call('GET', skey)
      if last and math.abs(tonumber(last) - t) < s then
        out[i] = 0
      else
        redis.call('SET', skey, string.format('%d', t), 'PX', ttl)
      end
    end
    if out[i] == 1 then redis.call('SET', fired, token, 'PX', ttl) end
  end
end
return out
"""
