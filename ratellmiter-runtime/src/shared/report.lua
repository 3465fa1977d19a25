-- Tells every process sharing a budget about a rate limit or the end of a probe.
--
-- KEYS[1] the shared pause: hash {until = µs on Redis's clock, interval = ms}
-- KEYS[2] the probe lock (owner id)
-- ARGV[1] 'limited', 'probe_ok' or 'probe_abandoned'   ARGV[2] the caller's owner id
-- ARGV[3] the server's retry-after ms (-1: none)        ARGV[4] first probe interval ms
-- ARGV[5] growth of the interval per refused probe      ARGV[6] longest interval ms
local mine = redis.call('GET', KEYS[2]) == ARGV[2]
if ARGV[1] == 'probe_ok' then
  -- The shared probe got through: everyone resumes (each with its ramp).
  if mine then redis.call('DEL', KEYS[1], KEYS[2]) end
  return 0
elseif ARGV[1] == 'probe_abandoned' then
  if mine then redis.call('DEL', KEYS[2]) end
  return 0
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[4])
if mine then
  -- The shared probe was refused: back off, and let the next probe go when it ends.
  local last = tonumber(redis.call('HGET', KEYS[1], 'interval') or ARGV[4])
  interval = math.floor(math.min(last * tonumber(ARGV[5]), tonumber(ARGV[6])))
  redis.call('DEL', KEYS[2])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  -- Already paused: a call issued before the pause does not restart it.
  return 0
end
local wait = interval
local retry_after = tonumber(ARGV[3])
if retry_after >= 0 then wait = retry_after end
redis.call('HSET', KEYS[1], 'until', string.format('%.0f', now + wait * 1000),
  'interval', interval)
-- Outlives its deadline until a probe ends it; an hour more clears a deserted key.
redis.call('PEXPIRE', KEYS[1], wait + 3600000)
return 1
