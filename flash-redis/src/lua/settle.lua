
-- settle: KEYS = {messages, ops};
-- ARGV = {op id, dedupe window ms, lease id, "consumed" | "released", ttl ms,
--         max message size, max messages, max bytes, size, message, size, message, ...}
-- Ends the lease: deletes (consumed) or makes visible again (released) the messages this lease
-- still holds; then appends the messages that fit the limits, as append does. Returns
-- {1, kept} when applied, {0, kept} when `op` had already been applied (a retry; see append).
-- Without messages to append a retry is harmless by itself, and the op is not recorded.
local key = KEYS[1]
local now = now_ms()
local appending = #ARGV >= 10
if appending then
  local before = applied(KEYS[2], ARGV[1])
  if before then
    return { 0, before }
  end
end
local lease = ARGV[3]
local consumed = ARGV[4] == 'consumed'
local fields = redis.call('HKEYS', key)
local lease_fields = {}
local stored, present = 0, {}
for _, field in ipairs(fields) do
  local kind = string.sub(field, 1, 1)
  if kind == 'l' then
    lease_fields[#lease_fields + 1] = field
  elseif kind == 'm' then
    stored = stored + 1
    present[field] = true
  end
end
if #lease_fields > 0 then
  local records = hmget(key, lease_fields)
  local drop, sizes = {}, {}
  for i, field in ipairs(lease_fields) do
    local held = records[i]
    if held then
      local space = string.find(held, ' ', 1, true)
      if space and string.sub(held, space + 1) == lease then
        drop[#drop + 1] = field
        local seq = string.sub(field, 2)
        if consumed and present['m' .. seq] then
          drop[#drop + 1] = 'm' .. seq
          drop[#drop + 1] = 's' .. seq
          sizes[#sizes + 1] = 's' .. seq
        end
      end
    end
  end
  if #sizes > 0 then
    -- Read the counters first: a hash without them is counted before anything is deleted.
    local _, bytes = counters(key)
    for _, size in ipairs(hmget(key, sizes)) do
      bytes = bytes - (tonumber(size) or 0)
    end
    local left = stored - #sizes
    chunked('HDEL', key, drop)
    if left <= 0 then
      -- No message left: the client has nothing, not even a sequence counter.
      redis.call('DEL', key)
    else
      redis.call('HSET', key, 'c', string.format('%d', left),
        'b', string.format('%d', math.max(bytes, 0)))
    end
  else
    chunked('HDEL', key, drop)
  end
end
local kept = push(key, ARGV[5], 9)
if appending then
  remember(KEYS[2], ARGV[1], now, tonumber(ARGV[2]), kept)
end
return { 1, kept }
