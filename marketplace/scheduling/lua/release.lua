-- An instance idle for its idle timeout leaves the pool (live → draining) unless work is queued
-- or the pool would drop below its floor.
-- ARGV: prefix, instance id, now, draining expiry
local p = ARGV[1]
if redis.call('HLEN', p .. 'q:jobs') > 0 then return 0 end
local floor = tonumber(redis.call('GET', p .. 'floor') or '0')
if redis.call('ZCOUNT', p .. 'live', ARGV[3], '+inf') <= floor then return 0 end
if redis.call('ZREM', p .. 'live', ARGV[2]) == 0 then return 0 end
redis.call('ZADD', p .. 'draining', ARGV[4], ARGV[2])
return 1
