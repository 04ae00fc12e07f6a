-- Removes up to ARGV[4] entries of one tenant that expired by ARGV[3],
-- giving their bytes back to the tenant's usage, as redb's sweeper does.
-- An entry rewritten since it was indexed (another expiry) is kept.
-- KEYS[1] the tenant's expiry index, KEYS[2] its usage; ARGV[1] the
-- tenant's key prefix `{t:T}:`, ARGV[2] the tenant name's length.
local xkey, ukey = KEYS[1], KEYS[2]
local tag, tlen = ARGV[1], tonumber(ARGV[2])
local now, most = tonumber(ARGV[3]), tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', xkey, '-inf', now, 'WITHSCORES', 'LIMIT', 0, most)
local freed, removed = 0, 0
for i = 1, #due, 2 do
  local member, score = due[i], tonumber(due[i + 1])
  redis.call('ZREM', xkey, member)
  local store, key = string.match(member, '^(.-)%z(.*)$')
  if store then
    local vkey = tag .. 'v:' .. member
    local fields = redis.call('HMGET', vkey, 'p', 'x')
    if fields[1] and tonumber(fields[2]) == score then
      redis.call('DEL', vkey)
      redis.call('ZREM', tag .. 'i:' .. store, key)
      freed = freed + tlen + #store + 2 + #key + 8 + #fields[1]
      removed = removed + 1
    end
  end
end
if freed > 0 then
  local usage = tonumber(redis.call('GET', ukey) or '0')
  redis.call('SET', ukey, math.max(usage - freed, 0))
end
return removed
