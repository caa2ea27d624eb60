-- flash-redis: helpers shared by the append, lease and settle scripts.
--
-- One client is ONE string key, KEYS[1] = "<prefix>:<client id, base64url>", whose value is
-- four MessagePack objects in a row (cmsgpack, built into Redis' Lua):
--   until   when the messages expire (ms; 0 without messages): every append that keeps one
--           moves it to now + ttl
--   ops     { op, at, kept, ... }: the writes applied in the dedupe window (op: the first 8
--           bytes of the operation id; at: when, ms; kept: how many messages it kept), so a
--           retried append or settle is applied once and answers as the first attempt did
--   leases  { id, until, ... }: the live leases (id: the first 8 bytes of the lease id)
--   msgs    { size, json, holder, ... }: the messages, oldest first; size as flash counts it
--           (text + extra tags bytes, computed by the caller); holder: 0 when visible, else
--           the position of its lease in `leases` (1 for the first pair)
-- The key expires (PX) when both the messages and the dedupe window are over; nothing else
-- is stored for a client. Every time is ARGV[1], the application's clock in ms.

local NOT_FLASH = 'flash-redis: the key holds something that is not flash data'

-- The client's state from the key's value (nil: no key): until, ops, leases, msgs; nil when
-- the key holds something else (the scripts then answer an error, never overwrite it).
local function decode(raw, now, window)
  if not raw then
    return 0, {}, {}, {}
  end
  local ok, expires, ops, leases, msgs = pcall(cmsgpack.unpack, raw)
  if not ok or type(expires) ~= 'number' or type(ops) ~= 'table' or type(leases) ~= 'table'
    or type(msgs) ~= 'table' then
    return nil
  end
  if expires <= now then
    -- The messages are gone at once when their TTL passes, even before the key is.
    expires, leases, msgs = 0, {}, {}
  end
  if window then
    local live = {}
    for i = 1, #ops, 3 do
      if ops[i + 1] + window > now then
        live[#live + 1] = ops[i]
        live[#live + 1] = ops[i + 1]
        live[#live + 1] = ops[i + 2]
      end
    end
    ops = live
  end
  return expires, ops, leases, msgs
end

-- How many messages operation `op` kept, if it was applied in the window; nil otherwise.
local function applied(ops, op)
  for i = 1, #ops, 3 do
    if ops[i] == op then
      return ops[i + 2]
    end
  end
  return nil
end

-- The packed value; leases no message names any more are dropped (and holders renumbered).
local function encode(expires, ops, leases, msgs)
  local used, live, renumber = {}, {}, {}
  for i = 3, #msgs, 3 do
    if msgs[i] > 0 then
      used[msgs[i]] = true
    end
  end
  for k = 1, #leases / 2 do
    if used[k] then
      live[#live + 1] = leases[2 * k - 1]
      live[#live + 1] = leases[2 * k]
      renumber[k] = #live / 2
    end
  end
  for i = 3, #msgs, 3 do
    if msgs[i] > 0 then
      msgs[i] = renumber[msgs[i]]
    end
  end
  if #msgs == 0 then
    expires = 0
  end
  return cmsgpack.pack(expires, ops, live, msgs)
end

-- When the key must expire: when the messages do and the newest op leaves the window.
local function deadline(expires, ops, msgs, window)
  local last = 0
  if #msgs > 0 then
    last = expires
  end
  for i = 2, #ops, 3 do
    last = math.max(last, ops[i] + window)
  end
  return last
end

-- Writes the client's state: deleted when it holds nothing, else expiring at its deadline.
local function store(key, now, window, expires, ops, leases, msgs)
  if #msgs == 0 and #ops == 0 then
    redis.call('DEL', key)
    return
  end
  local value = encode(expires, ops, leases, msgs)
  local px = math.max(deadline(expires, ops, msgs, window) - now, 1)
  redis.call('SET', key, value, 'PX', string.format('%d', px))
end

-- How many of the messages ARGV[first..] (triples' first two: size, json) fit the limits
-- ARGV[first - 3 .. first - 1] (longest message, most messages, most bytes) beside `count`
-- messages of `bytes` pending: a prefix, the newest are refused (flash_core's
-- `Limits::fitting`).
local function fitting(count, bytes, first)
  local max_size = tonumber(ARGV[first - 3])
  local max_count = tonumber(ARGV[first - 2])
  local max_bytes = tonumber(ARGV[first - 1])
  local offered = math.floor((#ARGV - first + 1) / 2)
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
  return kept
end

-- Appends the first `kept` messages of ARGV[first..] to `msgs`, visible.
local function push(msgs, kept, first)
  for i = 0, kept - 1 do
    msgs[#msgs + 1] = tonumber(ARGV[first + 2 * i])
    msgs[#msgs + 1] = ARGV[first + 2 * i + 1]
    msgs[#msgs + 1] = 0
  end
end

-- Records that `op` was applied now and kept `kept`. At most MAX_OPS are kept, the oldest
-- forgotten first, so a client writing without pause cannot grow its value without bound.
local MAX_OPS = 32
local function remember(ops, op, now, kept)
  if #ops >= 3 * MAX_OPS then
    for i = 1, #ops - 3 do
      ops[i] = ops[i + 3]
    end
    ops[#ops] = nil
    ops[#ops] = nil
    ops[#ops] = nil
  end
  ops[#ops + 1] = op
  ops[#ops + 1] = now
  ops[#ops + 1] = kept
end

-- The messages' count and bytes.
local function pending(msgs)
  local bytes = 0
  for i = 1, #msgs, 3 do
    bytes = bytes + msgs[i]
  end
  return #msgs / 3, bytes
end

