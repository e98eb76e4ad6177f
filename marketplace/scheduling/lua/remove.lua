-- Take one queued prediction off its pool (cancel or expiry before it started).
-- ARGV: prefix, prediction id
local p = ARGV[1]
local payload = redis.call('HGET', p .. 'q:jobs', ARGV[2])
if not payload then return 0 end
local account = cjson.decode(payload)['a']
local list = p .. 'q:a:' .. account
redis.call('HDEL', p .. 'q:jobs', ARGV[2])
redis.call('LREM', list, 0, ARGV[2])
if redis.call('LLEN', list) == 0 then redis.call('LREM', p .. 'q:ring', 0, account) end
redis.call('LPOP', p .. 'q:signal')
return 1
