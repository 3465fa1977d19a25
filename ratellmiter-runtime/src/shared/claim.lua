-- At a reserved slot: the ticket goes now unless ceil(rpm / 60) went in the last second
-- (and the margin: ARGV[2], the window in µs).
--
-- KEYS[2] the hand-overs of the last second (a list, newest first)   ARGV[1] rpm
-- Returns {1, now µs} (go: counted) or {0, µs to wait before claiming again}.
local now = clock()
local per_second = math.ceil(tonumber(ARGV[1]) / 60)
if redis.call('LLEN', KEYS[2]) >= per_second then
  local free_at = tonumber(redis.call('LINDEX', KEYS[2], per_second - 1)) + tonumber(ARGV[2])
  if now < free_at then return {0, free_at - now} end
end
redis.call('LPUSH', KEYS[2], int(now))
redis.call('LTRIM', KEYS[2], 0, per_second - 1)
redis.call('PEXPIRE', KEYS[2], 2000)
return {1, now}
