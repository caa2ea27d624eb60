
-- append: KEYS = {messages, ops}; ARGV = {op id, dedupe window ms, ttl ms, message...}
-- Returns 1 when applied, 0 when `op` had already been applied (a retry).
local now = now_ms()
if seen(KEYS[2], ARGV[1], now, tonumber(ARGV[2])) then
  return 0
end
push(KEYS[1], ARGV[3], 4)
return 1
