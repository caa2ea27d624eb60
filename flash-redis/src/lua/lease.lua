-- lease: KEYS = {client}; ARGV = {now ms, lease id, lease ms}
-- Takes every message that is visible (no lease, an expired lease, or already this lease's),
-- oldest first, and marks it as held by this lease until now + lease ms. Returns false when
-- it took nothing, else the value it wrote: the caller reads its messages from it, and
-- computes the value once this lease is consumed (for the settle's one-command path).
local key = KEYS[1]
local raw = redis.call('GET', key)
if not raw then
  return false
end
local now = tonumber(ARGV[1])
if #raw >= 9 and string.byte(raw, 1) == 250 and string.byte(raw, 9) == 0 then
  -- No live lease (the common case): every message is visible; mark each with lease 1.
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
  local value = table.concat(parts)
  redis.call('SET', key, value, 'KEEPTTL')
  return value
end
