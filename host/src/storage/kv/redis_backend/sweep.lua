-- Removes up to ARGV[4] entries of one tenant that expired by ARGV[3],
-- giving their charge back to the tenant's usage (the same charge as
-- apply.lua's), and answers {removed, the earliest expiry left or -1}.
-- An entry rewritten since it was indexed (another expiry) is kept.
-- KEYS[1] the tenant's expiry index, KEYS[2] its usage; ARGV[1] the
-- tenant's key prefix `{t:T}:`, ARGV[2] the tenant name's length, ARGV[5]
-- the per-entry overhead charged.
local xkey, ukey = KEYS[1], KEYS[2]
local tag, tlen = ARGV[1], tonumber(ARGV[2])
local now, most = tonumber(ARGV[3]), tonumber(ARGV[4])
local overhead = tonumber(ARGV[5])
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
      local p = #fields[1]
      freed = freed + tlen + #store + 2 + 3 * #key + 8 + p + overhead + math.floor(p / 4)
      removed = removed + 1
    end
  end
end
if freed > 0 then
  local usage = tonumber(redis.call('GET', ukey) or '0')
  redis.call('SET', ukey, math.max(usage - freed, 0))
end
local first = redis.call('ZRANGE', xkey, 0, 0, 'WITHSCORES')
if #first == 0 then return {removed, -1} end
return {removed, tonumber(first[2])}
