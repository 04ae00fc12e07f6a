-- Moves a tenant's next sweep in the fleet's sweep index after a sweep:
-- to ARGV[3] if the entry still reads ARGV[2] (what the sweeper saw) or is
-- later than ARGV[3]; a writer that lowered it meanwhile keeps its lower
-- time. An entry that is gone (the tenant was forgotten) stays gone.
-- KEYS[1] the index; ARGV[1] the tenant's data key.
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur then return 0 end
cur = tonumber(cur)
local seen, new = tonumber(ARGV[2]), tonumber(ARGV[3])
if cur == seen or cur > new then
  redis.call('ZADD', KEYS[1], new, ARGV[1])
end
return 1
