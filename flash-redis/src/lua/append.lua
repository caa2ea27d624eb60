-- append: KEYS = {client}; ARGV = {now ms, op, dedupe window ms, ttl ms, max message size,
--         max messages, max bytes, size, message, size, message, ...}
-- Keeps the prefix of the messages that fits the limits beside what the client has pending.
-- Returns {1, kept} when applied, {0, kept} when `op` had already been applied (a retry: kept
-- is what the first attempt kept).
local key = KEYS[1]
local now, op = tonumber(ARGV[1]), ARGV[2]
local window, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
-- A client with nothing stored (the common case) is written in one command: SET NX GET
-- writes only if the key is absent, and otherwise answers its value without writing.
local kept = fitting(0, 0, 8)
if kept == 0 then
  return { 1, 0 }
end
local msgs = {}
push(msgs, kept, 8)
local ops = { op, now, kept }
local px = string.format('%d', math.max(ttl, window))
local raw = redis.call('SET', key, cmsgpack.pack(now + ttl, ops, {}, msgs), 'NX', 'PX', px,
  'GET')
if not raw then
  return { 1, kept }
end
local expires, leases
expires, ops, leases, msgs = decode(raw, now, window)
if not expires then
  return redis.error_reply(NOT_FLASH)
end
local before = applied(ops, op)
if before then
  return { 0, before }
end
local count, bytes = pending(msgs)
kept = fitting(count, bytes, 8)
push(msgs, kept, 8)
remember(ops, op, now, kept)
if kept > 0 then
  expires = now + ttl
end
store(key, now, window, expires, ops, leases, msgs)
return { 1, kept }
