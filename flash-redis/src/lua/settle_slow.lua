local now, op, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local consumed = ARGV[5] == 'consumed'
local expires, ops, leases, msgs = decode(raw, now, window)
if not expires then
  if rewrite then
    restore(key, raw)
  end
  return redis.error_reply(NOT_FLASH)
end
if appending then
  local before = applied(ops, op)
  if before then
    return { 0, before }
  end
  if forgot(ops, now) then
    return redis.error_reply(FORGOT)
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
    if msgs[i] ~= mine then
      left[#left + 1] = msgs[i]
      left[#left + 1] = msgs[i + 1]
      left[#left + 1] = msgs[i + 2]
    elseif not consumed then
      left[#left + 1] = 0
      left[#left + 1] = msgs[i + 1]
      left[#left + 1] = msgs[i + 2]
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
