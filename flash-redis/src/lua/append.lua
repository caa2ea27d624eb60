-- append: KEYS = {client}; ARGV = {now ms, op, dedupe window ms, ttl ms, the new client's
--         value, its PX, max message size, max messages, max bytes, size, record, size,
--         record, ...} (records packed by the caller: holder 0, size, length, stored form)
-- Keeps the prefix of the messages that fits the limits beside what the client has pending.
-- Returns {1, kept} when applied, {0, kept} when `op` had already been applied (a retry: kept
-- is what the first attempt kept).
--
-- A client with nothing stored (the common case) is written in one command, with the value
-- the caller packed (every message it sends fits an empty client): SET NX GET writes only if
-- the key is absent, and otherwise answers its value without writing.
local key = KEYS[1]
local fresh = ARGV[5]
local raw = redis.call('SET', key, fresh, 'NX', 'PX', ARGV[6], 'GET')
local offered = (#ARGV - 9) / 2
if not raw then
  return { 1, offered }
end
local now = tonumber(ARGV[1])
local value, answer = append_to_ops(raw, now)
if value then
  redis.call('SET', key, value, 'PX', ARGV[6])
  return { 1, offered }
end
if answer then
  return answer
end
