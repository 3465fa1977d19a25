-- How one ticket's call ended (see common.lua): its lease comes back, its charges are
-- settled against what it used (refunded when refused), and a rate limit pauses the
-- fleet, or decides the probe.
--
-- KEYS[3] the leases   KEYS[4] the rolling day's uses
-- ARGV: 1 ticket id, 2 its epoch, 3 probe (0/1), 4 lease (0/1), 5 its day, 6 outcome
-- ('limited', 'ok', 'abandoned'), 7 retry-after ms (-1: none), 8 first probe interval
-- ms, 9 its growth, 10 longest interval ms, 11 ramp shape, 12 ramp start, 13 rpm,
-- 14..16 tokens charged (total, input, output), 17..19 used (-1: as charged),
-- 20..22 tpm, input tpm, output tpm (0: none), 23 daily budgets (0/1), 24 'rolling'
-- or the UTC offset.
local now = clock()
local st = load()
local id = ARGV[1]
local limited = ARGV[6] == 'limited'
if ARGV[4] == '1' then redis.call('ZREM', KEYS[3], id) end

-- Tokens: a refused call used nothing; otherwise the answer's usage replaces the charge.
local share = 1
if st.rate then share = math.max(st.rate / (tonumber(ARGV[13]) / 60), 0.001) end
local delta_total = 0
for i, key in ipairs({'t_tok', 't_in', 't_out'}) do
  local charged, used = tonumber(ARGV[13 + i]), tonumber(ARGV[16 + i])
  local delta = 0
  if limited then delta = -charged elseif used >= 0 then delta = used - charged end
  if i == 1 then delta_total = delta end
  local budget = tonumber(ARGV[19 + i])
  if budget > 0 and delta ~= 0 and st[key] then
    redis.call('HSET', S, key, int(st[key] + delta * 60000000 / (budget * share)))
  end
end
if ARGV[23] == '1' then
  if ARGV[24] == 'rolling' then
    local member = id .. ':' .. ARGV[14]
    local at = redis.call('ZSCORE', KEYS[4], member)
    if at then
      redis.call('ZREM', KEYS[4], member)
      if limited then
        redis.call('HINCRBY', S, 'r_req', -1)
      else
        redis.call('ZADD', KEYS[4], at, id .. ':' .. math.max(tonumber(ARGV[14]) + delta_total, 0))
      end
      redis.call('HINCRBY', S, 'r_tok', delta_total)
    end
  elseif st.day == tonumber(ARGV[5]) then
    if limited then redis.call('HINCRBY', S, 'd_req', -1) end
    redis.call('HINCRBY', S, 'd_tok', delta_total)
  end
end

-- The pause and the probe: only the probe's own answer decides it.
local probe_initial = tonumber(ARGV[8])
local retry_after = tonumber(ARGV[7])
if ARGV[3] == '1' and st.probe == tonumber(id) then
  if limited then
    -- Refused: back off, and let the next probe go when the pause ends.
    local int_ms = math.min(math.floor((st.p_int or probe_initial) * tonumber(ARGV[9])),
      tonumber(ARGV[10]))
    local wait = int_ms
    if retry_after >= 0 then wait = retry_after end
    redis.call('HSET', S, 'p_until', int(now + wait * 1000), 'p_int', int_ms, 'p_told', 0)
    redis.call('HDEL', S, 'probe', 'probe_until')
  elseif ARGV[6] == 'abandoned' then
    -- Ended without an answer: the next ticket probes at once.
    redis.call('HDEL', S, 'probe', 'probe_until')
  else
    local full = tonumber(ARGV[13]) / 60
    resume(st, now, tonumber(ARGV[11]), tonumber(ARGV[12]), full, probe_initial)
  end
  return 1
end
if limited and not st.p_until and tonumber(ARGV[2]) == (st.epoch or 0) then
  -- The first rate limit of this epoch pauses the fleet; one from a ticket sent
  -- before the last resume (an earlier epoch) is stale, and a pause already on stays.
  local wait, told = probe_initial, 0
  if retry_after >= 0 then wait, told = retry_after, 1 end
  redis.call('HSET', S, 'p_until', int(now + wait * 1000), 'p_int', probe_initial,
    'p_told', told, 'dbl', 0)
  return 1
end
return 0
