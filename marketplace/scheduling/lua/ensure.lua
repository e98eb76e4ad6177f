-- Ask for an instance only if the pool has none, live or on its way (the creators' fast path).
-- KEYS[1] pool index; ARGV: prefix, now, request expiry, request id, pool
local p = ARGV[1]
local now = tonumber(ARGV[2])
for _, set in ipairs({'live', 'pending', 'booting', 'setup'}) do
  if redis.call('ZCOUNT', p .. set, now, '+inf') > 0 then return 0 end
end
redis.call('ZADD', p .. 'pending', ARGV[3], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[5])
return 1
