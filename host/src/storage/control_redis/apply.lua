-- One control-plane change, atomic across nodes: checks that the writer
-- saw the latest revision, applies its operations, bumps the revision and
-- announces it.
-- KEYS: 1 revision, 2 tenants hash, 3 apps hash, 4 versions hash
-- ARGV: 1 the revision the writer applied, 2 the channel, then triples
--   (op, table 1..3, field) with a value after each `put`:
--   `put` T F V | `del` T F | `delprefix` T PREFIX
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {'stale', tostring(current)}
end
local i = 3
while i <= #ARGV do
  local op, hash, field = ARGV[i], KEYS[1 + tonumber(ARGV[i + 1])], ARGV[i + 2]
  if op == 'put' then
    redis.call('HSET', hash, field, ARGV[i + 3])
    i = i + 4
  elseif op == 'del' then
    redis.call('HDEL', hash, field)
    i = i + 3
  elseif op == 'delprefix' then
    local cursor = '0'
    repeat
      local page = redis.call('HSCAN', hash, cursor, 'MATCH', field .. '*', 'COUNT', 1000)
      cursor = page[1]
      local entries = page[2]
      for j = 1, #entries, 2 do
        redis.call('HDEL', hash, entries[j])
      end
    until cursor == '0'
    i = i + 3
  else
    return redis.error_reply('unknown control op ' .. tostring(op))
  end
end
local revision = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], tostring(revision))
return {'ok', tostring(revision)}
