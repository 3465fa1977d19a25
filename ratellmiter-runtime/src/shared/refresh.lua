-- Renews the leases of this process's calls in flight (KEYS[3]) for ARGV[1] ms more;
-- ARGV[2..] the ticket ids. A lease already expired is not brought back.
local now_ms = math.floor(clock() / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[3], 'XX', now_ms + tonumber(ARGV[1]), ARGV[i])
end
return 0
