-- Shared keys: common.lua's three writes, for a client among others (shared.lua).
local function store(_, _, window, expires, ops, leases, msgs)
  if #msgs == 0 and #ops == 0 then
    write_shared(nil)
  else
    write_shared(encode(expires, ops, leases, msgs), deadline(expires, ops, msgs, window))
  end
end

local function keep(_, value)
  return write_shared(value, own_until)
end

local function restore(_, value)
  write_shared(value, own_until)
end
