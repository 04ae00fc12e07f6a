-- One page of live keys of a namespace, in byte order, from its index.
-- ARGV: index key, value-key prefix, now_ms, ZRANGEBYLEX start, stop,
-- limit. Returns up to limit + 1 keys (one more says there is a next
-- page). Expired entries are skipped (the sweeper removes them).
local ikey, vprefix = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local start, stop = ARGV[4], ARGV[5]
local limit = tonumber(ARGV[6])
local out = {}
while #out <= limit do
  local batch = redis.call('ZRANGEBYLEX', ikey, start, stop, 'LIMIT', 0, limit + 1)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    local x = tonumber(redis.call('HGET', vprefix .. k, 'x') or '-1')
    if x == 0 or (x and x > now) then
      out[#out + 1] = k
      if #out > limit then break end
    end
  end
  start = '(' .. batch[#batch]
  if #batch < limit + 1 then break end
end
return out
