-- Removes up to ARGV[2] entries of a forgotten (deleted) tenant, store by
-- store from the tenant's store set, and answers {removed, 1 when nothing
-- of the tenant is left else 0}. ARGV[1] the tenant's key prefix `{t:T}:`.
local tag, most = ARGV[1], tonumber(ARGV[2])
local skey = tag .. 's'
local removed = 0
for _, store in ipairs(redis.call('SMEMBERS', skey)) do
  local ikey = tag .. 'i:' .. store
  local vprefix = tag .. 'v:' .. store .. '\0'
  while removed < most do
    local keys = redis.call('ZRANGE', ikey, 0, math.min(most - removed, 500) - 1)
    if #keys == 0 then break end
    for _, k in ipairs(keys) do
      redis.call('UNLINK', vprefix .. k)
    end
    redis.call('ZREMRANGEBYRANK', ikey, 0, #keys - 1)
    removed = removed + #keys
  end
  if removed >= most then return {removed, 0} end
  redis.call('DEL', ikey)
  redis.call('SREM', skey, store)
end
redis.call('DEL', tag .. 'x', tag .. 'u', skey)
return {removed, 1}
