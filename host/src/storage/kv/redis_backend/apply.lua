-- Applies N KV writes to one namespace atomically, with the rules of
-- storage/kv/logic.rs: a value's expiry travels with it, increment keeps
-- a live key's expiry, compare-and-swap compares the live value, and the
-- tenant's usage is refused past the quota. An entry is charged what Redis
-- holds for it (`redis_backend::charge` in mod.rs): its key as on redb
-- (base + key + 8 + payload), the key twice more (index and expiry
-- members), the overhead of its hash and index entries, and a quarter of
-- the payload for the allocator's rounding. Every write applies or none: a refusal undoes
-- the writes before it and answers {'err', index, kind, message}.
--
-- ARGV: now_ms, quota, base (bytes of tenant\0store\0), value-key prefix,
-- index key, expiry key, usage key, expiry-member prefix (store\0), n,
-- per-entry overhead, the tenant's store-set key, the store's name, then
-- per write: kind (set|del|inc|cas), key, value (or delta),
-- expiry for a new value (ms, 0 = never), expected flag (0 absent,
-- 1 present), expected value.
-- Every key shares the tenant's hash tag, so the script touches one slot.
local now = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local vprefix, ikey, xkey, ukey, xprefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local n = tonumber(ARGV[9])
local overhead = tonumber(ARGV[10])
local skey, store = ARGV[11], ARGV[12]
local listed = false
local usage = tonumber(redis.call('GET', ukey) or '0')
local undo = {}
local results = {}

local function restore()
  for i = #undo, 1, -1 do
    local u = undo[i]
    local member = xprefix .. u.key
    if u.p then
      redis.call('HSET', u.vkey, 'p', u.p, 'x', u.x)
      redis.call('ZADD', ikey, 0, u.key)
    else
      redis.call('DEL', u.vkey)
      redis.call('ZREM', ikey, u.key)
    end
    if u.p and u.x ~= 0 then
      redis.call('ZADD', xkey, u.x, member)
    else
      redis.call('ZREM', xkey, member)
    end
  end
end

local function size(key, payload)
  if payload then
    local p = #payload
    return base + 3 * #key + 8 + p + overhead + math.floor(p / 4)
  end
  return 0
end

for i = 0, n - 1 do
  local o = 13 + i * 6
  local kind, key, value = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  local newx, eflag, expected = tonumber(ARGV[o + 3]), ARGV[o + 4], ARGV[o + 5]
  local vkey = vprefix .. key
  local old = redis.call('HMGET', vkey, 'p', 'x')
  local old_p = old[1]
  if old_p == false then old_p = nil end
  local old_x = tonumber(old[2] or '0') or 0
  local current = nil
  if old_p and (old_x == 0 or old_x > now) then current = old_p end
  local apply = true
  local new_p, new_x, result = nil, 0, 'done'
  if kind == 'set' then
    new_p, new_x = value, newx
  elseif kind == 'del' then
    new_p = nil
  elseif kind == 'inc' then
    local before = '0'
    if current then
      local t = string.match(current, '^%s*([+-]?%d+)%s*$')
      if not t then
        restore()
        return {'err', i, 'not-integer', 'the value is not a decimal integer'}
      end
      if string.sub(t, 1, 1) == '+' then t = string.sub(t, 2) end
      before = t
    end
    -- Redis does the 64-bit arithmetic, exactly, and refuses overflow.
    undo[#undo + 1] = {vkey = vkey, key = key, p = old_p, x = old_x}
    redis.call('HSET', vkey, 'p', before)
    local added = redis.pcall('HINCRBY', vkey, 'p', value)
    if type(added) == 'table' and added.err then
      restore()
      return {'err', i, 'not-integer', 'the counter would overflow'}
    end
    new_p = redis.call('HGET', vkey, 'p')
    if current then new_x = old_x else new_x = newx end
    result = new_p
  elseif kind == 'cas' then
    local matches = (eflag == '0' and current == nil)
      or (eflag == '1' and current ~= nil and current == expected)
    if matches then
      new_p, new_x, result = value, newx, 'swapped'
    else
      apply, result = false, 'kept'
    end
  end
  if apply then
    local old_size, new_size = size(key, old_p), size(key, new_p)
    local new_usage = math.max(usage - old_size, 0) + new_size
    if new_size > old_size and new_usage > quota then
      restore()
      return {'err', i, 'quota', ''}
    end
    if kind ~= 'inc' then
      undo[#undo + 1] = {vkey = vkey, key = key, p = old_p, x = old_x}
    end
    local member = xprefix .. key
    if new_p then
      if not listed then
        -- The store set lets a deleted tenant's entries be found without
        -- scanning the keyspace (purge.lua).
        redis.call('SADD', skey, store)
        listed = true
      end
      redis.call('HSET', vkey, 'p', new_p, 'x', new_x)
      redis.call('ZADD', ikey, 0, key)
      if new_x ~= 0 then
        redis.call('ZADD', xkey, new_x, member)
      elseif old_x ~= 0 then
        redis.call('ZREM', xkey, member)
      end
    elseif old_p then
      redis.call('DEL', vkey)
      redis.call('ZREM', ikey, key)
      redis.call('ZREM', xkey, member)
    end
    usage = new_usage
  end
  results[#results + 1] = result
end
redis.call('SET', ukey, usage)
table.insert(results, 1, 'ok')
return results
