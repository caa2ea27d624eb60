-- flash-redis: helpers shared by the append, lease and settle scripts, for their slow paths.
-- The common paths (a new client's append, a read's settle) return before they are needed.
--
-- One client is ONE string key, KEYS[1] = "<prefix>:<client id, base64url>", whose value is
-- packed with Redis' `struct` library (big-endian), so that a script edits it with a few C
-- calls and string slices (src/value.rs reads and writes the same layout in Rust):
--   header  magic 0xFA (B), until (I6: when the messages expire, ms; 0 without messages),
--           op count (B), lease count (B)
--   ops     per write applied in the dedupe window: id (8 bytes: the first 8 of the
--           operation id), at (I6, ms), kept (I4): a retried append or settle is applied once
--           and answers as its first attempt did
--   leases  per live lease: id (8 bytes), until (I6, ms)
--   msgs    oldest first: holder (B: 0 visible, k the k-th lease), size (I4: as the limits
--           count it, computed by the caller), length (I4), flash's stored form (JSON)
-- The key expires (PX) when both the messages and the dedupe window are over; nothing else
-- is stored for a client. Every time is ARGV[1], the application's clock in ms.

local NOT_FLASH = 'flash-redis: the key holds something that is not flash data'
local MAGIC = 250
local unpack = struct.unpack
local pack = struct.pack
local sub = string.sub

-- The client's state from the key's value (nil: no key): until, ops, leases, msgs as flat
-- lists (ops: id, at, kept; leases: id, until; msgs: holder, size, the whole record as stored,
-- kept as it is so that a long value is not copied piece by piece again); nil when the
-- key holds something else (the scripts then answer an error, never overwrite it). Ops older
-- than `window` are dropped (all kept without a window).
local function decode(raw, now, window)
  if not raw then
    return 0, {}, {}, {}
  end
  if #raw < 9 or string.byte(raw, 1) ~= MAGIC then
    return nil
  end
  local _, expires, nops, nleases, pos = unpack('>BI6BB', raw)
  local ops, leases, msgs = {}, {}, {}
  for _ = 1, nops do
    local at, kept = unpack('>I6I4', raw, pos + 8)
    if not window or at + window > now then
      ops[#ops + 1] = sub(raw, pos, pos + 7)
      ops[#ops + 1] = at
      ops[#ops + 1] = kept
    end
    pos = pos + 18
  end
  for _ = 1, nleases do
    leases[#leases + 1] = sub(raw, pos, pos + 7)
    leases[#leases + 1] = unpack('>I6', raw, pos + 8)
    pos = pos + 14
  end
  local total = #raw
  while pos <= total do
    local holder, size, len = unpack('>BI4I4', raw, pos)
    msgs[#msgs + 1] = holder
    msgs[#msgs + 1] = size
    msgs[#msgs + 1] = sub(raw, pos, pos + 8 + len)
    pos = pos + 9 + len
  end
  if expires <= now then
    -- The messages are gone at once when their TTL passes, even before the key is.
    expires, leases, msgs = 0, {}, {}
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
  for i = 1, #msgs, 3 do
    if msgs[i] > 0 then
      used[msgs[i]] = true
    end
  end
  for k = 1, #leases / 2 do
    if used[k] and #live < 2 * 255 then
      live[#live + 1] = leases[2 * k - 1]
      live[#live + 1] = leases[2 * k]
      renumber[k] = #live / 2
    end
  end
  if #msgs == 0 then
    expires = 0
  end
  local parts = { pack('>BI6BB', MAGIC, expires, #ops / 3, #live / 2) }
  for i = 1, #ops, 3 do
    parts[#parts + 1] = ops[i] .. pack('>I6I4', ops[i + 1], ops[i + 2])
  end
  for i = 1, #live, 2 do
    parts[#parts + 1] = live[i] .. pack('>I6', live[i + 1])
  end
  for i = 1, #msgs, 3 do
    -- A holder whose lease was dropped (more than 255 live) is visible again.
    local holder = msgs[i] > 0 and renumber[msgs[i]] or 0
    local record = msgs[i + 2]
    if string.byte(record, 1) ~= holder then
      record = string.char(holder) .. sub(record, 2)
    end
    parts[#parts + 1] = record
  end
  return table.concat(parts)
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

-- Writes the value a lease made, its expiry unchanged; answers what the store reads the
-- lease's messages from.
local function keep(key, value)
  redis.call('SET', key, value, 'KEEPTTL')
  return value
end

-- Puts back a value that is not flash's, which the settle's common path overwrote.
local function restore(key, raw)
  redis.call('SET', key, raw)
end

-- How many of the messages ARGV[first..] (pairs: size, packed record) fit the limits
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

-- Appends the first `kept` messages of ARGV[first..] to `msgs`, visible. Each record is
-- the caller's packed message (holder 0, size, length, stored form).
local function push(msgs, kept, first)
  for i = 0, kept - 1 do
    msgs[#msgs + 1] = 0
    msgs[#msgs + 1] = tonumber(ARGV[first + 2 * i])
    msgs[#msgs + 1] = ARGV[first + 2 * i + 1]
  end
end

-- The most operations a client's value holds: a client writing without pause cannot grow its
-- value without bound. Past it the oldest are folded into one entry under the id FORGOTTEN
-- (never an operation's: the store sends none that is all zero), which keeps the newest time
-- of the operations it stands for and leaves the window as they would. A write not found among
-- the operations, sent at or before that time, may be one of them: `forgot` says so, and the
-- scripts answer an error rather than apply it a second time. Only the time the write was
-- first sent makes that exact (ARGV[1], the same on the store's own retry): a write sent again
-- later by another request is recognised while fewer than MAX_OPS - 1 writes came after it.
local MAX_OPS = 255
local FORGOTTEN = '\0\0\0\0\0\0\0\0'
local FORGOT = 'flash-redis: this write may already be applied: its id is no longer kept '
  .. '(more than 254 writes for this client since); it is not applied again'

-- Whether `op`, sent at `sent` and not found among `ops`, may be one of those forgotten.
local function forgot(ops, sent)
  return ops[1] == FORGOTTEN and ops[2] >= sent
end

-- Records that `op` was applied now and kept `kept`.
local function remember(ops, op, now, kept)
  while #ops >= 3 * MAX_OPS do
    -- The oldest operation (after FORGOTTEN, when there is one) joins FORGOTTEN.
    local first = ops[1] == FORGOTTEN and 4 or 1
    local at = ops[first + 1]
    table.remove(ops, first)
    table.remove(ops, first)
    table.remove(ops, first)
    if ops[1] == FORGOTTEN then
      ops[2] = math.max(ops[2], at)
    else
      table.insert(ops, 1, 0)
      table.insert(ops, 1, at)
      table.insert(ops, 1, FORGOTTEN)
    end
  end
  ops[#ops + 1] = op
  ops[#ops + 1] = now
  ops[#ops + 1] = kept
end

-- The messages' count and bytes.
local function pending(msgs)
  local bytes = 0
  for i = 2, #msgs, 3 do
    bytes = bytes + msgs[i]
  end
  return #msgs / 3, bytes
end

