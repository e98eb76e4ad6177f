-- A heartbeat refreshes a live instance's registration, and never brings back one that has
-- started draining (released, evicted, retired) in between.
-- KEYS[1] pool index; ARGV: prefix, instance id, live expiry, pool, now
local p = ARGV[1]
local draining = redis.call('ZSCORE', p .. 'draining', ARGV[2])
if draining and tonumber(draining) >= tonumber(ARGV[5]) then return 0 end
redis.call('ZADD', p .. 'live', ARGV[3], ARGV[2])
redis.call('SADD', KEYS[1], ARGV[4])
return 1
