local op = ARGV[2]
local window, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local expires, ops, leases, msgs = decode(raw, now, window)
if not expires then
  return redis.error_reply(NOT_FLASH)
end
local before = applied(ops, op)
if before then
  return { 0, before }
end
if forgot(ops, now) then
  return redis.error_reply(FORGOT)
end
local count, bytes = pending(msgs)
local kept = fitting(count, bytes, 10)
push(msgs, kept, 10)
remember(ops, op, now, kept)
if kept > 0 then
  expires = now + ttl
end
store(key, now, window, expires, ops, leases, msgs)
return { 1, kept }
