-- Queue a prediction: its payload, its account's list, the ring (if the account was not in it),
-- a wake-up token, and the pool in the pool index.
-- KEYS[1] pool index; ARGV: prefix, prediction id, account, payload, pool
local p = ARGV[1]
redis.call('HSET', p .. 'q:jobs', ARGV[2], ARGV[4])
if redis.call('RPUSH', p .. 'q:a:' .. ARGV[3], ARGV[2]) == 1 then
  redis.call('RPUSH', p .. 'q:ring', ARGV[3])
end
redis.call('RPUSH', p .. 'q:signal', '1')
redis.call('SADD', KEYS[1], ARGV[5])
return 1
