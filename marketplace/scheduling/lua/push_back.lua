-- Queue a popped prediction again at the front: handed back, it keeps its turn.
-- ARGV: prefix, prediction id, account, payload
local p = ARGV[1]
redis.call('HSET', p .. 'q:jobs', ARGV[2], ARGV[4])
if redis.call('LPUSH', p .. 'q:a:' .. ARGV[3], ARGV[2]) == 1 then
  redis.call('LPUSH', p .. 'q:ring', ARGV[3])
end
redis.call('RPUSH', p .. 'q:signal', '1')
return 1
