-- Reserves the next slot of the fleet's schedule for one ticket (see common.lua).
--
-- KEYS[2] the hand-overs of the last second (a list, newest first)
-- KEYS[3] the leases of calls in flight (a sorted set: ticket id by expiry, ms)
-- KEYS[4] the rolling day's uses (a sorted set: "id:tokens" by time, µs)
-- ARGV: 1 rpm, 2 learned spacing µs (0: none), 3 ramp shape (0 slow start, 1 linear),
-- 4 ramp start, 5 ramp step, 6 µs the call has waited, 7 tokens, 8 input tokens,
-- 9 output tokens, 10 tpm, 11 input tpm, 12 output tpm (0: none), 13 rpd, 14 tpd
-- (0: none), 15 the day's end: UTC offset in s, or 'rolling', 16 max in flight (0:
-- none), 17 lease ms, 18 first probe interval ms, 19 its growth, 20 longest interval
-- ms, 21 probe time-out ms, 22 longest wait ms before asking again, 23 the window of
-- the one-second bound on hand-overs, µs (1 s and a margin for the send's jitter).
--
-- Returns {status, wait µs, at µs, ticket id, epoch, probe (0/1), day, rate × 1000}:
-- status 0 a slot at `at` (claimed already when wait is 0), 1 paused (or another
-- ticket probes), 2 at capacity,
-- 3 a daily quota spent until `at`.
local now = clock()
local st = load()
local rpm = tonumber(ARGV[1])
local full = rpm / 60
local shape = tonumber(ARGV[3])
local ramp_start, step = tonumber(ARGV[4]), tonumber(ARGV[5])
local poll = tonumber(ARGV[22]) * 1000
local probe_initial = tonumber(ARGV[18])
local epoch = st.epoch or 0
-- The pause, and the one probe after it.
local pause_over = false
if st.p_until then
  if now < st.p_until then return {1, st.p_until - now, now, 0, epoch, 0, 0, 0} end
  if st.probe then
    if now < st.probe_until then
      return {1, math.min(st.probe_until - now, poll), now, 0, epoch, 0, 0, 0}
    end
    -- Unanswered for the probe time-out: its process died, or its report was lost
    -- (a hung call is as likely as a refusal): this ticket probes instead.
    redis.call('HDEL', S, 'probe', 'probe_until')
  end
  pause_over = true
end

-- Calls in flight, as leases that expire (renewed while their call runs).
local max_in_flight = tonumber(ARGV[16])
local now_ms = math.floor(now / 1000)
if max_in_flight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[3]) >= max_in_flight then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local wait = math.min((tonumber(first[2]) - now_ms) * 1000, poll)
    return {2, math.max(wait, 1000), now, 0, epoch, 0, 0, 0}
  end
end

-- Daily quotas, counted for the fleet.
local tokens = tonumber(ARGV[7])
local rpd, tpd = tonumber(ARGV[13]), tonumber(ARGV[14])
local rolling = ARGV[15] == 'rolling'
local day = 0
if rpd > 0 or tpd > 0 then
  local used_req, used_tok, resets
  if rolling then
    local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - 86400000000)
    local gone_tok = 0
    for _, m in ipairs(old) do gone_tok = gone_tok + tonumber(string.match(m, ':(%d+)$')) end
    if #old > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000000)
      st.r_req = (st.r_req or 0) - #old
      st.r_tok = (st.r_tok or 0) - gone_tok
      redis.call('HSET', S, 'r_req', st.r_req, 'r_tok', st.r_tok)
    end
    used_req, used_tok = st.r_req or 0, st.r_tok or 0
    if (rpd > 0 and used_req + 1 > rpd) or (tpd > 0 and used_tok + tokens > tpd) then
      -- Back when enough of the oldest uses are a day old.
      local need_req = used_req + 1 - rpd
      local need_tok = used_tok + tokens - tpd
      local all = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
      local freed_req, freed_tok = 0, 0
      resets = now
      for i = 1, #all, 2 do
        freed_req = freed_req + 1
        freed_tok = freed_tok + tonumber(string.match(all[i], ':(%d+)$'))
        resets = tonumber(all[i + 1]) + 86400000000
        if (rpd == 0 or freed_req >= need_req) and (tpd == 0 or freed_tok >= need_tok) then
          break
        end
      end
      return {3, resets - now, resets, 0, epoch, 0, 0, 0}
    end
  else
    local offset = tonumber(ARGV[15])
    day = math.floor((now / 1000000 + offset) / 86400)
    if st.day ~= day then
      st.d_req, st.d_tok = 0, 0
      redis.call('HSET', S, 'day', day, 'd_req', 0, 'd_tok', 0)
    end
    used_req, used_tok = st.d_req or 0, st.d_tok or 0
    if (rpd > 0 and used_req + 1 > rpd) or (tpd > 0 and used_tok + tokens > tpd) then
      resets = ((day + 1) * 86400 - offset) * 1000000
      return {3, resets - now, resets, 0, epoch, 0, day, 0}
    end
  end
end

-- The pause is over: the server said when (slow start) and the fleet resumes, or
-- this ticket is the one probe.
local probe = 0
if pause_over then
  if st.p_told == 1 and shape == 0 then
    resume(st, now, shape, ramp_start, full, probe_initial)
    epoch = st.epoch
  else
    probe = 1
  end
end

-- The schedule: the ramp on the fleet's history, the learned ceiling, the token
-- schedules and the one-second bound on the hand-overs.
local full_iv = math.ceil(60000000 / rpm)
local learned = tonumber(ARGV[2])
if learned > 0 then
  redis.call('HSET', S, 'learned', learned, 'learned_until', int(now + 10000000))
elseif (st.learned_until or 0) > now then
  learned = st.learned
end
local cap = full
if learned > 0 then cap = math.min(full, 1000000 / learned) end
local per_second = math.ceil(rpm / 60)

local slot
local rate = st.rate or ramp_start * full
if probe == 1 then
  -- A probe goes out when the pause ends, whatever the schedule said before it.
  slot = now
else
  slot = math.max(st.tat or 0, now)
  for i, key in ipairs({'t_tok', 't_in', 't_out'}) do
    if tonumber(ARGV[9 + i]) > 0 then slot = math.max(slot, st[key] or 0) end
  end
  if redis.call('LLEN', KEYS[2]) >= per_second then
    slot = math.max(slot, tonumber(redis.call('LINDEX', KEYS[2], per_second - 1))
      + tonumber(ARGV[23]))
  end
  -- The ramp: grow while calls wait for their slot, fall back to the observed rate
  -- plus a step when they do not, never below the start.
  local start = ramp_start * full
  local dbl = st.dbl or 1
  if st.last then
    local since = math.max(st.last, st.from or 0)
    local came = now - tonumber(ARGV[6])
    if came <= math.max(st.tat or 0, since) then
      local dt = math.max(slot - since, 0) / 1000000
      if shape == 0 and dbl == 1 then rate = rate * (1 + step) ^ dt
      elseif shape == 0 then rate = rate + 0.10 * full * dt
      else rate = rate + step * full * dt end
    else
      dbl = 1
      local gap = (slot - since) / 1000000
      if gap > 0 then
        local seen = 1 / gap
        if shape == 0 then rate = math.min(rate, seen * (1 + step))
        else rate = math.min(rate, seen + step * full) end
      end
    end
  else
    rate = start
  end
  rate = math.min(math.max(rate, math.min(start, cap)), cap)
  redis.call('HSET', S, 'dbl', dbl)
end

local interval = full_iv
if rate < full then interval = math.max(math.ceil(1000000 / rate), full_iv) end
redis.call('HSET', S, 'tat', int(slot + interval), 'last', int(slot), 'rate', tostring(rate))
local share = math.max(rate / full, 0.001)
for i, key in ipairs({'t_tok', 't_in', 't_out'}) do
  local budget = tonumber(ARGV[9 + i])
  if budget > 0 then
    local spacing = tonumber(ARGV[6 + i]) * 60000000 / (budget * share)
    redis.call('HSET', S, key, int(math.max(st[key] or 0, slot) + spacing))
  end
end

-- Charge the ticket.
local id = redis.call('HINCRBY', S, 'seq', 1)
if probe == 1 then
  redis.call('HSET', S, 'probe', id, 'probe_until', int(now + tonumber(ARGV[21]) * 1000))
end
if rpd > 0 or tpd > 0 then
  if rolling then
    redis.call('ZADD', KEYS[4], int(now), id .. ':' .. tokens)
    redis.call('HINCRBY', S, 'r_req', 1)
    redis.call('HINCRBY', S, 'r_tok', tokens)
    redis.call('PEXPIRE', KEYS[4], 2 * 86400000)
  else
    redis.call('HINCRBY', S, 'd_req', 1)
    redis.call('HINCRBY', S, 'd_tok', tokens)
  end
end
if max_in_flight > 0 then
  redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[17]), id)
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[17]) + 60000)
end
if slot <= now then
  redis.call('LPUSH', KEYS[2], int(now))
  redis.call('LTRIM', KEYS[2], 0, per_second - 1)
  redis.call('PEXPIRE', KEYS[2], 2000)
end
-- Deserted for two days, the key goes (a daily quota lives a day).
redis.call('PEXPIRE', S, 2 * 86400000)
return {0, slot - now, slot, id, epoch, probe, day, math.floor(rate * 1000)}
