-- One control-plane change, atomic across nodes: checks that nothing the
-- change read was written after the revision the writer checked against
-- (or, for a change without a scope, that no change at all came since),
-- applies its operations, bumps the revision, stamps the keys it wrote,
-- and announces it.
-- KEYS: 1 revision, 2 tenants hash, 3 apps hash, 4 versions hash,
--   5 touched (scope key -> revision that last wrote it)
-- ARGV: 1 the revision the writer applied, 2 the channel, 3 the number of
--   scope keys read (-1: no scope, the whole revision is checked), those
--   keys, the number of scope keys written, those keys, then triples
--   (op, table 1..3, field) with a value after each `put`:
--   `put` T F V | `del` T F | `delprefix` T PREFIX
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local expected = tonumber(ARGV[1])
local nreads = tonumber(ARGV[3])
local i = 4
if current < expected or (nreads < 0 and current ~= expected) then
  return {'stale', tostring(current)}
end
if nreads > 0 and current ~= expected then
  local stamps = redis.call('HMGET', KEYS[5], unpack(ARGV, 4, 3 + nreads))
  for _, stamp in ipairs(stamps) do
    if stamp and tonumber(stamp) > expected then
      return {'stale', tostring(current)}
    end
  end
end
if nreads > 0 then i = i + nreads end
local nwrites = tonumber(ARGV[i])
local writes_from = i + 1
i = i + 1 + nwrites
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
for j = writes_from, writes_from + nwrites - 1 do
  redis.call('HSET', KEYS[5], ARGV[j], revision)
end
redis.call('PUBLISH', ARGV[2], tostring(revision))
return {'ok', tostring(revision)}
