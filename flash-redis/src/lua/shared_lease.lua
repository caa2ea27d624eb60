-- lease's common path (see lease.lua): a client with no live lease. It keeps its deadline;
-- the answer is the whole key, which the store reads this client's messages from.
if not raw then
  return false
end
local value = lease_unheld(raw, now)
if value ~= nil then
  return value and write_shared(value, own_until)
end
