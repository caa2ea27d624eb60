-- settle: KEYS = {client};
-- ARGV = {now ms, op, dedupe window ms, lease id, "consumed" | "released", ttl ms,
--         expected sha1, consumed value, its deadline ms (the lease's answer, or '' x 3),
--         max message size, max messages, max bytes, size, message, size, message, ...}
-- Ends the lease: deletes (consumed) or makes visible again (released) the messages this lease
-- still holds; then appends the messages that fit the limits, as append does. Returns
-- {1, kept} when applied, {0, kept} when `op` had already been applied (a retry; see append).
-- Without messages to append a retry is harmless by itself, and the op is not recorded.
local key = KEYS[1]
local now, op, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local appending = #ARGV >= 14
local consumed = ARGV[5] == 'consumed'
local raw
local rewrite = false
if consumed and not appending and ARGV[7] ~= '' then
  -- The common end of a read: consuming what the lease took, nothing to append. Write what
  -- the lease computed and read the old value in the same command; when the value is still
  -- the one the lease wrote, that was the whole settle.
  if ARGV[8] == '' then
    raw = redis.call('GETDEL', key)
  else
    local px = string.format('%d', math.max(tonumber(ARGV[9]) - now, 1))
    raw = redis.call('SET', key, ARGV[8], 'PX', px, 'GET')
  end
  if raw and redis.sha1hex(raw) == ARGV[7] then
    return { 1, 0 }
  end
  if not raw then
    if ARGV[8] ~= '' then
      redis.call('DEL', key)
    end
    return { 1, 0 }
  end
  -- Changed since the lease (another append, lease or settle): settle from what it held, and
  -- write it back whatever happens below.
  rewrite = true
else
  raw = redis.call('GET', key)
end
if not raw and not appending then
  return { 1, 0 }
end
local expires, ops, leases, msgs = decode(raw, now, window)
if not expires then
  if rewrite then
    redis.call('SET', key, raw)
  end
  return redis.error_reply(NOT_FLASH)
end
if appending then
  local before = applied(ops, op)
  if before then
    return { 0, before }
  end
end
local mine = nil
for k = 1, #leases / 2 do
  if leases[2 * k - 1] == ARGV[4] then
    mine = k
  end
end
if mine then
  local left = {}
  for i = 1, #msgs, 3 do
    if msgs[i + 2] ~= mine then
      left[#left + 1] = msgs[i]
      left[#left + 1] = msgs[i + 1]
      left[#left + 1] = msgs[i + 2]
    elseif not consumed then
      left[#left + 1] = msgs[i]
      left[#left + 1] = msgs[i + 1]
      left[#left + 1] = 0
    end
  end
  msgs = left
end
local kept = 0
if appending then
  local count, bytes = pending(msgs)
  kept = fitting(count, bytes, 13)
  push(msgs, kept, 13)
  remember(ops, op, now, kept)
  if kept > 0 then
    expires = now + tonumber(ARGV[6])
  end
end
if mine or appending or rewrite then
  store(key, now, window, expires, ops, leases, msgs)
end
return { 1, kept }
