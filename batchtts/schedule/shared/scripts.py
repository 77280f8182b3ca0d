"""The Lua scripts that keep one account's limits in Redis, one short script per decision.

Why scripts: each decision (take a stream, grant a start, react to a 429)
reads and writes several keys and must be atomic across every process; a
script runs whole inside Redis and reads Redis' own clock (``TIME``), so
host clocks do not matter. pyrate-limiter's Redis bucket covers only the pace
(not the leases, the window guard or the adaptive state), so all of it is
here, in one place, in the same style.

Keys (``KEYS``), under the account's namespace:

- ``leases``: sorted set, lease id -> expiry (Redis time). A stream holds one;
  its process renews it while the stream runs; a dead process's leases expire.
- ``state``: hash, the adaptive state: ``cap`` (streams, a float for AIMD's
  additive steps), ``rate`` (starts/s), ``tat`` (GCRA's theoretical arrival
  time), ``paused_until`` (Retry-After), the auto cap's probe fields.
- ``window``: sorted set, start id -> when the API counted it at the latest
  (the grant plus ANSWER_WAIT_LIMIT until its answer is noted, then the answer's
  time): at most N starts may count in any window, as the API checks.

Floats go back to Python as strings: Redis turns a Lua number into an integer.
"""

from __future__ import annotations

_PRELUDE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(key, field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end
"""

#: KEYS: leases. ARGV: ttl s, readd (1/0), lease ids... -> leases renewed.
#: ``readd``: after Redis came back (a restart forgets them), the leases held are put back.
RENEW_LEASES = (
    _PRELUDE
    + """
local t = now()
local renewed = 0
for i = 3, #ARGV do
  local args = ARGV[2] == '1' and {t + tonumber(ARGV[1]), ARGV[i]} or {'XX', 'CH', t + tonumber(ARGV[1]), ARGV[i]}
  redis.call('ZADD', KEYS[1], unpack(args))
  renewed = renewed + 1
end
return renewed
"""
)

#: KEYS: leases. ARGV: lease id.
GIVE_LEASE = """
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

#: KEYS: leases, state, window. ARGV: lease id, start id, lease ttl s, most streams, auto (1/0),
#: most starts/s (0: no pace), window starts (0: no guard), window s, answer wait limit s, epsilon s,
#: max catch-up s, idle expiry s, lookahead s.
#: A stream and a start together, or neither: a lease is not held while its start waits for the pace
#: (on a tight stream cap that would idle the streams), and no start is granted that has no stream.
#: A start due within the lookahead (by the pace or a pause) is granted now for that time: the caller
#: sleeps until then, holding its stream, so a round trip to Redis and a late wake-up are not on the
#: schedule's path. A start the window guard holds back is not granted ahead.
#: -> {1, granted for (Redis time), cap, seconds until then}
#:    or {0, wait s, why: 0 pace or pause, 1 the window guard, 2 no stream free}.
TAKE_SLOT = (
    _PRELUDE
    + """
local t = now()
local most = tonumber(ARGV[4])
local auto = ARGV[5] == '1'
local most_rate = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local window = tonumber(ARGV[8])
local eps = tonumber(ARGV[10])
local expiry = math.floor(tonumber(ARGV[12]) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
local cap = num(KEYS[2], auto and 'auto_cap' or 'cap', auto and 1 or most)
cap = math.max(1, math.min(math.floor(cap), most))
if redis.call('ZCARD', KEYS[1]) >= cap then
  redis.call('HSET', KEYS[2], 'waiting_until', tostring(t + 0.5))
  redis.call('PEXPIRE', KEYS[2], expiry)
  return {0, '0', 2}
end
local wait = 0
local why = 0
local paused = num(KEYS[2], 'paused_until', 0)
if paused > t then wait = paused - t end
local rate = nil
local tat = num(KEYS[2], 'tat', 0)
if most_rate > 0 then
  rate = math.min(num(KEYS[2], 'rate', most_rate), most_rate)
  if tat > t then wait = math.max(wait, tat - t) end
end
if n > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t - window - eps)
  if redis.call('ZCARD', KEYS[3]) >= n then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local reopens = tonumber(oldest[2]) + window + eps - t
    if reopens > wait then
      wait = reopens
      why = 1
    end
  end
end
if wait > 0 and (why ~= 0 or wait > tonumber(ARGV[13])) then return {0, tostring(wait), why} end
local at = t + wait
redis.call('ZADD', KEYS[1], at + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], expiry)
if rate then
  local interval = 1 / rate
  redis.call('HSET', KEYS[2], 'tat', tostring(math.max(tat, at - math.min(interval, tonumber(ARGV[11]))) + interval))
end
redis.call('PEXPIRE', KEYS[2], expiry)
if n > 0 then
  redis.call('ZADD', KEYS[3], at + tonumber(ARGV[9]), ARGV[2])
  redis.call('PEXPIRE', KEYS[3], expiry)
end
return {1, tostring(at), cap, tostring(wait)}
"""
)

#: KEYS: window. ARGV: start id, when its answer came on Redis' clock (a late estimate: the grant plus
#: the local time from asking for it to the answer). The API counted it by then, and surely by now:
#: the earlier of the two, so a report that waited in a queue does not hold the window.
NOTE_ANSWERED = (
    _PRELUDE
    + """
local t = math.min(now(), tonumber(ARGV[2]))
local counted = redis.call('ZSCORE', KEYS[1], ARGV[1])
if counted and tonumber(counted) > t then
  redis.call('ZADD', KEYS[1], tostring(t), ARGV[1])
end
return 1
"""
)

#: KEYS: state, leases. ARGV: adaptive, most starts/s, most streams, auto, base quiet s, max quiet s.
#: A stream ended well: the auto cap grows (slow start, then probes), or AIMD's additive increase.
#: -> {cap, rate}
ON_SUCCESS = (
    _PRELUDE
    + """
local t = now()
local adaptive = ARGV[1] == '1'
local most_rate = tonumber(ARGV[2])
local most = tonumber(ARGV[3])
local auto = ARGV[4] == '1'
local cap
if auto then
  cap = num(KEYS[1], 'auto_cap', 1)
  local held = redis.call('ZCARD', KEYS[2])
  local saturated = held >= math.floor(cap) and num(KEYS[1], 'waiting_until', 0) > t
  if saturated and cap < most then
    local refused_at = num(KEYS[1], 'refused_at', nil)
    if refused_at == nil then
      cap = cap + 1
    else
      local round = num(KEYS[1], 'round', 0) + 1
      if round >= cap and t >= num(KEYS[1], 'probe_at', math.huge) then
        if cap >= refused_at then redis.call('HSET', KEYS[1], 'quiet', ARGV[5]) end
        cap = cap + 1
        round = 0
      end
      redis.call('HSET', KEYS[1], 'round', round)
    end
    redis.call('HSET', KEYS[1], 'auto_cap', tostring(cap))
  end
else
  cap = num(KEYS[1], 'cap', most)
  if adaptive and cap < most then
    local step = 1 / math.max(cap, 1)
    if cap + 1 >= num(KEYS[1], 'streams_at_429', most + 1) then step = step / 10 end
    cap = math.min(most, cap + step)
    redis.call('HSET', KEYS[1], 'cap', tostring(cap))
  end
end
local rate = most_rate
if adaptive and most_rate > 0 then
  rate = num(KEYS[1], 'rate', most_rate)
  if rate < most_rate then
    local at_cut = num(KEYS[1], 'rate_at_cut', most_rate)
    local before = num(KEYS[1], 'rate_before_cut', most_rate)
    local per_second = math.max(0.05 * at_cut, 0.5 * (before - rate))
    rate = math.min(most_rate, rate + per_second / math.max(rate, 0.05))
    redis.call('HSET', KEYS[1], 'rate', tostring(rate))
  end
end
return {tostring(cap), tostring(rate)}
"""
)

#: KEYS: state, leases. ARGV: pause s (0: none), granted at (Redis time), adaptive, most starts/s,
#: most streams, auto, kind ('concurrency', 'rate' or ''), base quiet s, max quiet s.
#: -> {what ('settled', 'slowed', 'paused'), cap, rate}
ON_RATE_LIMITED = (
    _PRELUDE
    + """
local t = now()
local adaptive = ARGV[3] == '1'
local most_rate = tonumber(ARGV[4])
local most = tonumber(ARGV[5])
local auto = ARGV[6] == '1'
local kind = ARGV[7]
local held = redis.call('ZCARD', KEYS[2])
if auto and (kind == 'concurrency' or (kind == '' and held > 1)) then
  local cap = num(KEYS[1], 'auto_cap', 1)
  local refused_at = num(KEYS[1], 'refused_at', nil)
  local probe_at = num(KEYS[1], 'probe_at', nil)
  local quiet = num(KEYS[1], 'quiet', tonumber(ARGV[8]))
  local probing = refused_at ~= nil and probe_at ~= nil and t >= probe_at
  if probing then
    quiet = math.min(tonumber(ARGV[9]), quiet * 2)
    redis.call('HSET', KEYS[1], 'quiet', tostring(quiet))
  end
  local level = math.max(1, held - 1)
  cap = math.max(1, math.min(cap, level))
  redis.call('HSET', KEYS[1], 'auto_cap', tostring(cap), 'refused_at', level + 1, 'round', 0)
  if probing or probe_at == nil then redis.call('HSET', KEYS[1], 'probe_at', tostring(t + quiet)) end
  return {'settled', tostring(cap), tostring(quiet)}
end
local pause = tonumber(ARGV[1])
if pause > 0 and t + pause > num(KEYS[1], 'paused_until', 0) then
  redis.call('HSET', KEYS[1], 'paused_until', tostring(t + pause))
end
local cap = num(KEYS[1], auto and 'auto_cap' or 'cap', auto and 1 or most)
local rate = num(KEYS[1], 'rate', most_rate)
if not adaptive or tonumber(ARGV[2]) < num(KEYS[1], 'last_cut', 0) then
  return {'paused', tostring(cap), tostring(rate)}
end
redis.call('HSET', KEYS[1], 'last_cut', tostring(t))
if not auto and held >= math.floor(cap) then
  redis.call('HSET', KEYS[1], 'streams_at_429', math.max(1, held))
  cap = math.max(1, math.floor(math.min(cap, held) * 0.5))
  redis.call('HSET', KEYS[1], 'cap', tostring(cap))
end
if most_rate > 0 then
  redis.call('HSET', KEYS[1], 'rate_before_cut', tostring(rate))
  rate = math.max(0.05, rate * 0.7)
  redis.call('HSET', KEYS[1], 'rate', tostring(rate), 'rate_at_cut', tostring(rate))
  redis.call('HSET', KEYS[1], 'tat', tostring(math.max(num(KEYS[1], 'tat', 0), t)))
end
return {'slowed', tostring(cap), tostring(rate)}
"""
)
