-- flash-redis: the common paths of append and lease on a client's value, as functions of the
-- value alone, so that one key per client and shared keys run the same ones (the callers
-- write what they answer).

-- append, to a client whose value holds only recent operations (its last message was read
-- within the dedupe window): the new client's value ARGV[5] with the operations still in the
-- window kept before the new one. Returns that value; or nil and the answer to a retry of an
-- operation already applied; or nil when the slow path must decide (not such a value, some
-- operations forgotten, or this one would make too many: common.lua's `remember`, `forgot`).
local function append_to_ops(raw, now)
  local nops = #raw >= 9 and string.byte(raw, 1) == 250 and string.byte(raw, 8)
  if not (nops and string.byte(raw, 9) == 0 and #raw == 9 + 18 * nops) then
    return nil
  end
  local op, oldest = ARGV[2], now - tonumber(ARGV[3])
  local ops = {}
  local simple = nops < 254
  for pos = 10, 9 + 18 * nops, 18 do
    local id = string.sub(raw, pos, pos + 7)
    if id == op then
      return nil, { 0, (struct.unpack('>I4', raw, pos + 14)) }
    end
    if id == '\0\0\0\0\0\0\0\0' then
      simple = false
    end
    if struct.unpack('>I6', raw, pos + 8) > oldest then
      ops[#ops + 1] = string.sub(raw, pos, pos + 17)
    end
  end
  if not simple then
    return nil
  end
  local fresh = ARGV[5]
  return string.sub(fresh, 1, 7) .. string.char(#ops + 1, 0) .. table.concat(ops)
    .. string.sub(fresh, 10)
end

-- lease, on a client's value with no live lease: every message is visible; each is marked
-- with lease 1 (ARGV[2], until now + ARGV[3]). Returns the value; false when there is nothing
-- to take; nil when the slow path must decide (a lease is live, or not such a value).
local function lease_unheld(raw, now)
  if not (#raw >= 9 and string.byte(raw, 1) == 250 and string.byte(raw, 9) == 0) then
    return nil
  end
  local until_, nops = struct.unpack('>I6B', raw, 2)
  if until_ <= now then
    return false
  end
  local start = 10 + 18 * nops
  local total = #raw
  if start > total then
    return false
  end
  local parts = {
    string.sub(raw, 1, 8), '\1', string.sub(raw, 10, start - 1),
    ARGV[2], struct.pack('>I6', now + tonumber(ARGV[3])),
  }
  local pos = start
  while pos <= total do
    local len = struct.unpack('>I4', raw, pos + 5)
    parts[#parts + 1] = '\1'
    parts[#parts + 1] = string.sub(raw, pos + 1, pos + 8 + len)
    pos = pos + 9 + len
  end
  return table.concat(parts)
end
