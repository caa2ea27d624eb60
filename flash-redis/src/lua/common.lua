-- flash-redis: helpers shared by the append, lease and settle scripts.
--
-- One client's messages live in ONE hash, KEYS[1] = "{<prefix>:<client hex>}:m":
--   n      the last sequence number handed out (HINCRBY; restarts when the hash is gone)
--   m<seq> a message, in flash's compact JSON form
--   l<seq> the lease on message <seq>: "<until ms> <lease hex>"; absent = visible
-- KEYS[2] = "{<prefix>:<client hex>}:o" is a sorted set of recent operation ids (score: the
-- server time they were applied), so a retried append or settle is applied once.
-- Every time is the server's clock (TIME), in milliseconds.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lua's unpack() has a limit of a few thousand values: send long argument lists in chunks
-- (of an even length, so HSET pairs are never split).
local function chunked(command, key, args)
  local i = 1
  while i <= #args do
    local j = math.min(i + 999, #args)
    redis.call(command, key, unpack(args, i, j))
    i = j + 1
  end
end

-- The values of `fields`, in order (HMGET in chunks).
local function hmget(key, fields)
  local out = {}
  local i = 1
  while i <= #fields do
    local j = math.min(i + 999, #fields)
    local part = redis.call('HMGET', key, unpack(fields, i, j))
    for k = 1, #part do out[#out + 1] = part[k] end
    i = j + 1
  end
  return out
end

-- True when operation `op` was already applied in the last `window` ms; records it otherwise.
local function seen(okey, op, now, window)
  if redis.call('ZSCORE', okey, op) then
    return true
  end
  redis.call('ZREMRANGEBYSCORE', okey, '-inf', now - window)
  redis.call('ZADD', okey, now, op)
  redis.call('PEXPIRE', okey, window)
  return false
end

-- Appends ARGV[first..] as new messages at the end of the queue and refreshes the TTL.
local function push(key, ttl, first)
  local count = #ARGV - first + 1
  if count <= 0 then
    return
  end
  local last = redis.call('HINCRBY', key, 'n', count)
  local args = {}
  for i = 0, count - 1 do
    args[#args + 1] = 'm' .. string.format('%d', last - count + 1 + i)
    args[#args + 1] = ARGV[first + i]
  end
  chunked('HSET', key, args)
  redis.call('PEXPIRE', key, ttl)
end
