
-- append: KEYS = {messages, ops};
-- ARGV = {op id, dedupe window ms, ttl ms, max message size, max messages, max bytes,
--         size, message, size, message, ...}
-- Keeps the prefix of the messages that fits the limits beside what the client has pending.
-- Returns {1, kept} when applied, {0, kept} when `op` had already been applied (a retry: kept
-- is what the first attempt kept, -1 if unknown).
local now = now_ms()
local window = tonumber(ARGV[2])
local before = applied(KEYS[2], ARGV[1])
if before then
  return { 0, before }
end
local kept = push(KEYS[1], ARGV[3], 7)
remember(KEYS[2], ARGV[1], now, window, kept)
return { 1, kept }
