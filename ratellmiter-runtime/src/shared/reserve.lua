-- Reserves the next slot of one budget shared by many processes: a GCRA schedule (a
-- theoretical arrival time per key), read and advanced atomically, on Redis's clock.
--
-- KEYS[1] next free slot, µs since the epoch on Redis's clock
-- KEYS[2] the shared pause: hash {until = µs, interval = ms of the current probe interval}
-- KEYS[3] the probe lock: the owner id of the one process probing
-- KEYS[4] the learned (slower) spacing in µs, set by a process that learned it
-- KEYS[5] next free slot of the token schedule, µs
-- ARGV[1] spacing µs (60 s / rpm)        ARGV[2] the caller's owner id
-- ARGV[3] probe lock expiry ms            ARGV[4] the caller's learned spacing µs (0: none)
-- ARGV[5] the call's token estimate       ARGV[6] tokens per minute (0: no token budget)
-- ARGV[7] longest wait ms before asking again while another process probes
--
-- Returns {status, wait µs, slot µs}: 0 a slot at now + wait, 3 the same as the probe
-- after a pause, 1 paused (ask again after wait), 2 another process probes (likewise).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local status = 0

local pause_until = redis.call('HGET', KEYS[2], 'until')
if pause_until then
  pause_until = tonumber(pause_until)
  if now < pause_until then
    return {1, pause_until - now, now}
  end
  -- The pause is over: one process probes, the others look again soon. The lock
  -- expires, so a probe whose process died does not stall everyone.
  if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then
    status = 3
  else
    local poll = tonumber(ARGV[7])
    local ttl = redis.call('PTTL', KEYS[3])
    if ttl < 0 or ttl > poll then ttl = poll end
    return {2, ttl * 1000, now}
  end
end

local interval = tonumber(ARGV[1])
local learned = tonumber(ARGV[4])
if learned > 0 then
  -- Kept while its process keeps asking; gone 10 s after it recovered.
  redis.call('SET', KEYS[4], string.format('%.0f', learned), 'PX', 10000)
else
  learned = tonumber(redis.call('GET', KEYS[4]) or '0')
end
if learned > interval then interval = learned end

local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local tpm = tonumber(ARGV[6])
if tpm > 0 then
  -- Tokens are spaced like tickets: each call pushes the next by its share of a minute.
  slot = math.max(slot, tonumber(redis.call('GET', KEYS[5]) or '0'))
  local tokens_next = slot + tonumber(ARGV[5]) * 60000000 / tpm
  redis.call('SET', KEYS[5], string.format('%.0f', tokens_next),
    'PX', math.ceil((tokens_next - now) / 1000) + 60000)
end
local next_slot = slot + interval
-- '%.0f': Lua would print a 16-digit number in exponent form and lose microseconds.
redis.call('SET', KEYS[1], string.format('%.0f', next_slot),
  'PX', math.ceil((next_slot - now) / 1000) + 60000)
return {status, slot - now, slot}
