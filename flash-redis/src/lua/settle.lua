
-- settle: KEYS = {messages, ops};
-- ARGV = {op id, dedupe window ms, lease id, "consumed" | "released", ttl ms, message...}
-- Ends the lease: deletes (consumed) or makes visible again (released) the messages this lease
-- still holds; then appends the messages, if any. Returns 1 when applied, 0 when `op` had
-- already been applied (a retry).
local key = KEYS[1]
local now = now_ms()
if #ARGV >= 6 and seen(KEYS[2], ARGV[1], now, tonumber(ARGV[2])) then
  return 0
end
local lease = ARGV[3]
local consumed = ARGV[4] == 'consumed'
local fields = redis.call('HKEYS', key)
local lease_fields = {}
for _, field in ipairs(fields) do
  if string.sub(field, 1, 1) == 'l' then
    lease_fields[#lease_fields + 1] = field
  end
end
if #lease_fields > 0 then
  local records = hmget(key, lease_fields)
  local drop = {}
  for i, field in ipairs(lease_fields) do
    local held = records[i]
    if held then
      local space = string.find(held, ' ', 1, true)
      if space and string.sub(held, space + 1) == lease then
        drop[#drop + 1] = field
        if consumed then
          drop[#drop + 1] = 'm' .. string.sub(field, 2)
        end
      end
    end
  end
  chunked('HDEL', key, drop)
  -- Nothing but the sequence counter left: the client has no messages.
  if consumed and #drop > 0 and redis.call('HLEN', key) <= 1 then
    redis.call('DEL', key)
  end
end
push(key, ARGV[5], 6)
return 1
