-- lease: KEYS = {client}; ARGV = {now ms, lease id, lease ms, dedupe window ms}
-- Takes every message that is visible (no lease, an expired lease, or already this lease's),
-- oldest first, and marks it as held by this lease until now + lease ms. Returns {} when it
-- took nothing, else {sha1 of the value written, the value once this lease is consumed (''
-- when nothing would be left), when that value must expire (ms), message, message, ...}: a
-- settle that finds the value unchanged writes the consumed value in one command.
local key = KEYS[1]
local raw = redis.call('GET', key)
if not raw then
  return {}
end
local now, lease = tonumber(ARGV[1]), ARGV[2]
local expires, ops, leases, msgs = decode(raw, now, nil)
if not expires then
  return redis.error_reply(NOT_FLASH)
end
local mine = nil
for k = 1, #leases / 2 do
  if leases[2 * k - 1] == lease then
    mine = k
  end
end
if not mine then
  leases[#leases + 1] = lease
  leases[#leases + 1] = 0
  mine = #leases / 2
end
leases[2 * mine] = now + tonumber(ARGV[3])
local out, rest = { '', '', '' }, {}
for i = 3, #msgs, 3 do
  local holder = msgs[i]
  if holder == 0 or holder == mine or leases[2 * holder] <= now then
    msgs[i] = mine
    out[#out + 1] = msgs[i - 1]
  else
    rest[#rest + 1] = msgs[i - 2]
    rest[#rest + 1] = msgs[i - 1]
    rest[#rest + 1] = holder
  end
end
if #out == 3 then
  return {}
end
local value = encode(expires, ops, leases, msgs)
redis.call('SET', key, value, 'KEEPTTL')
out[1] = redis.sha1hex(value)
if #rest > 0 or #ops > 0 then
  out[3] = string.format('%d', deadline(expires, ops, rest, tonumber(ARGV[4])))
  out[2] = encode(expires, ops, leases, rest)
end
return out
