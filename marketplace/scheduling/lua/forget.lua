-- Forget a pool with nothing in it (its queue, instances and requests all empty).
-- KEYS[1] pool index; ARGV: prefix, now, pool
local p = ARGV[1]
local now = tonumber(ARGV[2])
if redis.call('HLEN', p .. 'q:jobs') > 0 then return 0 end
for _, set in ipairs({'live', 'pending', 'booting', 'setup', 'draining'}) do
  if redis.call('ZCOUNT', p .. set, now, '+inf') > 0 then return 0 end
end
redis.call('SREM', KEYS[1], ARGV[3])
return 1
