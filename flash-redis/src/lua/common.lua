-- flash-redis: helpers shared by the append, lease and settle scripts.
--
-- One client's messages live in ONE hash, KEYS[1] = "{<prefix>:<client hex>}:m":
--   n      the last sequence number handed out (HINCRBY; restarts when the hash is gone)
--   c      how many messages are pending (leased or not): the limits are checked against it
--   b      their bytes (sum of the sizes below)
--   m<seq> a message, in flash's compact JSON form
--   s<seq> its size as flash counts it (text + extra tags bytes, computed by the caller)
--   l<seq> the lease on message <seq>: "<until ms> <lease hex>"; absent = visible
-- The counters live in the hash so that they expire with it and need no key of their own.
-- KEYS[2] = "{<prefix>:<client hex>}:o" is a sorted set of recent operation ids (score: the
-- server time they were applied), each beside a member "<op>:<kept>" of the same score that
-- records how many messages it kept, so a retried append or settle is applied once and
-- answers as the first attempt did.
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

-- How many messages operation `op` kept when it was applied in the dedupe window; nil when it
-- was not. -1 when an earlier version of these scripts applied it without recording the count.
local function applied(okey, op)
  local at = redis.call('ZSCORE', okey, op)
  if not at then
    return nil
  end
  local tag = op .. ':'
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', okey, at, at)) do
    if string.sub(member, 1, #tag) == tag then
      return tonumber(string.sub(member, #tag + 1)) or -1
    end
  end
  return -1
end

-- Records that `op` was applied now and kept `kept` messages; forgets operations older than
-- `window` ms.
local function remember(okey, op, now, window, kept)
  redis.call('ZREMRANGEBYSCORE', okey, '-inf', now - window)
  redis.call('ZADD', okey, now, op, now, op .. ':' .. string.format('%d', kept))
  redis.call('PEXPIRE', okey, window)
end

-- The size flash counts for a stored message (text + extra tags bytes), for entries written
-- without an s<seq> field; what does not decode counts its whole length.
local function stored_size(value)
  local ok, decoded = pcall(cjson.decode, value)
  if not ok or type(decoded) ~= 'table' or type(decoded[2]) ~= 'string' then
    return #value
  end
  local size = #decoded[2]
  if type(decoded[3]) == 'string' then
    size = size + #decoded[3]
  end
  return size
end

-- Counts a hash written without the counters (by an earlier version of these scripts), writes
-- the counters and the missing sizes, and returns count, bytes.
local function recount(key)
  local all = redis.call('HGETALL', key)
  local values = {}
  for i = 1, #all, 2 do
    values[all[i]] = all[i + 1]
  end
  local count, bytes, sizes = 0, 0, {}
  for i = 1, #all, 2 do
    local field = all[i]
    if string.sub(field, 1, 1) == 'm' then
      local seq = string.sub(field, 2)
      local size = tonumber(values['s' .. seq])
      if not size then
        size = stored_size(all[i + 1])
        sizes[#sizes + 1] = 's' .. seq
        sizes[#sizes + 1] = string.format('%d', size)
      end
      count = count + 1
      bytes = bytes + size
    end
  end
  chunked('HSET', key, sizes)
  redis.call('HSET', key, 'c', string.format('%d', count), 'b', string.format('%d', bytes))
  return count, bytes
end

-- The client's pending count and bytes.
local function counters(key)
  local v = redis.call('HMGET', key, 'c', 'b', 'n')
  if not v[1] then
    if v[3] then
      return recount(key)
    end
    return 0, 0
  end
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end

-- Appends the messages ARGV[first..] (pairs: size, message) at the end of the queue, as many
-- as fit the limits ARGV[first - 3 .. first - 1] (longest message, most messages, most bytes)
-- beside what the client has pending: a prefix, the newest are refused (flash_core's
-- `Limits::fitting`). Refreshes the TTL when it keeps any. Returns how many it kept.
local function push(key, ttl, first)
  local max_size = tonumber(ARGV[first - 3])
  local max_count = tonumber(ARGV[first - 2])
  local max_bytes = tonumber(ARGV[first - 1])
  local offered = math.floor((#ARGV - first + 1) / 2)
  if offered <= 0 then
    return 0
  end
  local count, bytes = counters(key)
  local kept = 0
  while kept < offered do
    local size = tonumber(ARGV[first + 2 * kept])
    if size == nil or size > max_size or count >= max_count or bytes + size > max_bytes then
      break
    end
    count = count + 1
    bytes = bytes + size
    kept = kept + 1
  end
  if kept == 0 then
    return 0
  end
  local last = redis.call('HINCRBY', key, 'n', kept)
  local args = {}
  for i = 0, kept - 1 do
    local seq = string.format('%d', last - kept + 1 + i)
    args[#args + 1] = 'm' .. seq
    args[#args + 1] = ARGV[first + 2 * i + 1]
    args[#args + 1] = 's' .. seq
    args[#args + 1] = ARGV[first + 2 * i]
  end
  args[#args + 1] = 'c'
  args[#args + 1] = string.format('%d', count)
  args[#args + 1] = 'b'
  args[#args + 1] = string.format('%d', bytes)
  chunked('HSET', key, args)
  redis.call('PEXPIRE', key, ttl)
  return kept
end
