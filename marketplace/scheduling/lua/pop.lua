-- Pop the next prediction round-robin across accounts and count it in flight for the instance.
-- Only a live instance takes work: one that is draining (idle release, eviction, retirement)
-- finishes what it runs and takes nothing new, atomically with the check that made it drain.
-- ARGV: prefix, '1' to consume a wake-up token too (the caller did not BLPOP one), instance id,
-- now
local p = ARGV[1]
local live = redis.call('ZSCORE', p .. 'live', ARGV[3])
if not live or tonumber(live) < tonumber(ARGV[4]) then return false end
for _ = 1, 1000 do
  local account = redis.call('LPOP', p .. 'q:ring')
  if not account then return false end
  local list = p .. 'q:a:' .. account
  local id = redis.call('LPOP', list)
  if id then
    if redis.call('LLEN', list) > 0 then redis.call('RPUSH', p .. 'q:ring', account) end
    local payload = redis.call('HGET', p .. 'q:jobs', id) or ''
    redis.call('HDEL', p .. 'q:jobs', id)
    if ARGV[2] == '1' then redis.call('LPOP', p .. 'q:signal') end
    redis.call('HINCRBY', p .. 'busy', ARGV[3], 1)
    return {id, payload}
  end
end
return false
