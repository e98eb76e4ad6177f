-- How many queued predictions will be served before this one if nothing else arrives: with
-- round-robin turns, an account ahead of ours in the ring serves up to idx+1 before our item at
-- index idx, one behind it up to idx.
-- ARGV: prefix, prediction id
local p = ARGV[1]
local payload = redis.call('HGET', p .. 'q:jobs', ARGV[2])
if not payload then return false end
local account = cjson.decode(payload)['a']
local idx = redis.call('LPOS', p .. 'q:a:' .. account, ARGV[2])
if not idx then return false end
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
return position
