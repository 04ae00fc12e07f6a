-- Writes a node's whole control plane over Redis's, after Redis went back
-- in time (emptied, restored from an old backup, a lagging replica): the
-- operator's re-seed. Refused unless Redis is still at the revision the
-- node read, so a change made meanwhile is not overwritten blind.
-- KEYS: 1 revision, 2 tenants hash, 3 apps hash, 4 versions hash,
--   5 touched
-- ARGV: 1 the revision the node read, 2 the channel, 3 the new revision,
--   then per table (tenants, apps, versions) a count and that many
--   field/value pairs.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {'stale', tostring(current)}
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local i = 4
for t = 2, 4 do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    redis.call('HSET', KEYS[t], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {'ok', ARGV[3]}
