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
local nops = #raw >= 9 and string.byte(raw, 1) == 250 and string.byte(raw, 8)
if nops and string.byte(raw, 9) == 0 and #raw == 9 + 18 * nops then
  -- The key holds only recent operations (the client's last message was read within the
  -- dedupe window): the new client's value, with the operations still in the window kept
  -- before the new one. When some were forgotten, or this one would make too many, the
  -- slow path below decides (common.lua's `remember` and `forgot`).
  local op, oldest = ARGV[2], now - tonumber(ARGV[3])
  local ops = {}
  local simple = nops < 254
  for pos = 10, 9 + 18 * nops, 18 do
    local id = string.sub(raw, pos, pos + 7)
    if id == op then
      return { 0, (struct.unpack('>I4', raw, pos + 14)) }
    end
    if id == '\0\0\0\0\0\0\0\0' then
      simple = false
    end
    if struct.unpack('>I6', raw, pos + 8) > oldest then
      ops[#ops + 1] = string.sub(raw, pos, pos + 17)
    end
  end
  if simple then
    redis.call('SET', key, string.sub(fresh, 1, 7) .. string.char(#ops + 1, 0)
      .. table.concat(ops) .. string.sub(fresh, 10), 'PX', ARGV[6])
    return { 1, offered }
  end
end
