local lease = ARGV[2]
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
  if #leases >= 2 * 255 then
    -- As many live leases as a holder can name: this one takes nothing until one ends.
    local live = 0
    for k = 2, #leases, 2 do
      if leases[k] > now then
        live = live + 1
      end
    end
    if live >= 255 then
      return false
    end
  end
  leases[#leases + 1] = lease
  leases[#leases + 1] = 0
  mine = #leases / 2
end
leases[2 * mine] = now + tonumber(ARGV[3])
local took = false
for i = 1, #msgs, 3 do
  local holder = msgs[i]
  if holder == 0 or holder == mine or leases[2 * holder] <= now then
    msgs[i] = mine
    took = true
  end
end
if not took then
  return false
end
return keep(key, encode(expires, ops, leases, msgs))
