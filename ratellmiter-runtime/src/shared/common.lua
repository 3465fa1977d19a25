-- Shared by the scripts of one budget (prepended to each): the fleet's state and the
-- ramp of the pacing engine (ratellmiter-runtime/src/pacer, "Ramp"), on Redis's clock.
--
-- KEYS[1], a hash: tat (next free slot, µs since the epoch), last (last slot), from
-- (the ramp counts from here), rate (tickets/s), dbl (1: the slow start doubles),
-- epoch (grows at each resume), seq (ticket ids), learned / learned_until (the slower
-- spacing a process learned, µs), p_until / p_int / p_told (the pause: until when, the
-- probe interval ms, 1 if the server said when), probe / probe_until (the probe's
-- ticket id and its time-out), t_tok / t_in / t_out (the token schedules), day /
-- d_req / d_tok (today's use), r_req / r_tok (the rolling day's use).
local S = KEYS[1]

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function load()
  local st = {}
  local flat = redis.call('HGETALL', S)
  for i = 1, #flat, 2 do st[flat[i]] = tonumber(flat[i + 1]) end
  return st
end

-- '%.0f': Lua would print a 16-digit number in exponent form and lose microseconds.
local function int(x) return string.format('%.0f', x) end

-- The fleet resumes after a pause: a new epoch; after a pause whose first probe
-- succeeded (slow start) the rate in force goes on, after an outage the ramp restarts.
local function resume(st, now, shape, ramp_start, full, probe_initial)
  local short = (st.p_int or probe_initial) == probe_initial
  local start = ramp_start * full
  local rate = st.rate or start
  if short and shape == 0 then
    rate = math.min(rate, full)
  else
    rate = math.min(start, full)
    redis.call('HSET', S, 'dbl', 1)
  end
  redis.call('HSET', S, 'epoch', (st.epoch or 0) + 1, 'rate', tostring(rate),
    'from', int(now), 'tat', int(math.max(st.tat or 0, now)))
  redis.call('HDEL', S, 'p_until', 'p_int', 'p_told', 'probe', 'probe_until')
  st.epoch = (st.epoch or 0) + 1
  st.rate = rate
  st.from = now
  st.tat = math.max(st.tat or 0, now)
  st.p_until = nil
end
