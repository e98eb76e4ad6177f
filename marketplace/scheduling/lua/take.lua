-- An agent takes a start request (pending → booting) unless it expired or another agent took it.
-- ARGV: prefix, request id, now, booting expiry
local p = ARGV[1]
local expires = redis.call('ZSCORE', p .. 'pending', ARGV[2])
if not expires or tonumber(expires) < tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', p .. 'pending', ARGV[2])
redis.call('ZADD', p .. 'booting', ARGV[4], ARGV[2])
return 1
