-- One page of live keys of a namespace, in byte order, from its index.
-- ARGV: index key, value-key prefix, now_ms, ZRANGEBYLEX start, stop,
-- limit, most entries to examine. Returns {keys, cont, examined}: up to
-- limit + 1 live keys (one more says there is a next page), when the
-- script stopped at its examined bound first the last key it examined
-- (the next page starts after it) else false, and how many entries it
-- examined (paced per tenant). Expired entries are skipped (the
-- sweeper removes them); the bound keeps one call's work on the shared
-- Redis small however many expired entries lie in the way.
local ikey, vprefix = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local start, stop = ARGV[4], ARGV[5]
local limit = tonumber(ARGV[6])
local most = tonumber(ARGV[7])
local out, examined = {}, 0
while #out <= limit do
  local want = math.min(limit + 1, most - examined)
  if want <= 0 then
    return {out, string.sub(start, 2), examined}
  end
  local batch = redis.call('ZRANGEBYLEX', ikey, start, stop, 'LIMIT', 0, want)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    examined = examined + 1
    local x = tonumber(redis.call('HGET', vprefix .. k, 'x') or '-1')
    if x == 0 or (x and x > now) then
      out[#out + 1] = k
      if #out > limit then break end
    end
    start = '(' .. k
  end
  if #batch < want then break end
end
return {out, false, examined}
