-- What a create does, in one round trip: queue the prediction (as push.lua), count the run for
-- its model, ask for an instance unless one is live or on its way (as ensure.lua), and answer
-- with the pool's state, so that the create's answer (its queue position and phase) needs no
-- other round trip.
-- KEYS[1] pool index, KEYS[2] run counts, KEYS[3] room reports of the hardware
-- ARGV: prefix, prediction id, account, payload, pool, now, request expiry, request id, model id
local p = ARGV[1]
redis.call('HSET', p .. 'q:jobs', ARGV[2], ARGV[4])
if redis.call('RPUSH', p .. 'q:a:' .. ARGV[3], ARGV[2]) == 1 then
  redis.call('RPUSH', p .. 'q:ring', ARGV[3])
end
redis.call('RPUSH', p .. 'q:signal', '1')
redis.call('SADD', KEYS[1], ARGV[5])
redis.call('HINCRBY', KEYS[2], ARGV[9], 1)

local now = tonumber(ARGV[6])
local counts = {}
local coming = 0
for i, set in ipairs({'live', 'pending', 'booting', 'setup'}) do
  counts[i] = redis.call('ZCOUNT', p .. set, now, '+inf')
  coming = coming + counts[i]
end
local asked = 0
if coming == 0 then
  redis.call('ZADD', p .. 'pending', ARGV[7], ARGV[8])
  counts[2] = 1
  asked = 1
end

-- Its place in serving order (as position.lua): it is the last of its account's list.
local account = ARGV[3]
local idx = redis.call('LLEN', p .. 'q:a:' .. account) - 1
local position = idx + 1
local ahead = true
for _, other in ipairs(redis.call('LRANGE', p .. 'q:ring', 0, -1)) do
  if other == account then
    ahead = false
  else
    local turns = idx
    if ahead then turns = idx + 1 end
    position = position + math.min(redis.call('LLEN', p .. 'q:a:' .. other), turns)
  end
end

return {
  asked,
  position,
  redis.call('HLEN', p .. 'q:jobs'),
  redis.call('ZRANGEBYSCORE', p .. 'live', now, '+inf'),
  counts[2],
  counts[3],
  counts[4],
  redis.call('ZRANGEBYSCORE', p .. 'draining', now, '+inf'),
  redis.call('HGETALL', p .. 'busy'),
  redis.call('LRANGE', p .. 'runs', 0, 19),
  redis.call('LRANGE', p .. 'setups', 0, 9),
  redis.call('HGETALL', KEYS[3]),
}
