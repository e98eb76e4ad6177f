-- Evict an instance to make room for another pool's: live → draining, only while it runs
-- nothing and its pool stays at or above its floor (a deployment's min_instances). Its queued
-- work, if any, stays queued and asks for an instance of its own.
-- ARGV: prefix, instance id, now, draining expiry
local p = ARGV[1]
if tonumber(redis.call('HGET', p .. 'busy', ARGV[2]) or '0') > 0 then return 0 end
local floor = tonumber(redis.call('GET', p .. 'floor') or '0')
if redis.call('ZCOUNT', p .. 'live', ARGV[3], '+inf') <= floor then return 0 end
if redis.call('ZREM', p .. 'live', ARGV[2]) == 0 then return 0 end
redis.call('ZADD', p .. 'draining', ARGV[4], ARGV[2])
return 1
