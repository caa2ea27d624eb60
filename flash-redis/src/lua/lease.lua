
-- lease: KEYS = {messages}; ARGV = {lease id, lease ms}
-- Takes every message that is visible (no lease, an expired lease, or already this lease's),
-- oldest first, marks it as held by this lease until now + lease ms, and returns the messages.
local key = KEYS[1]
local all = redis.call('HGETALL', key)
if #all == 0 then
  return {}
end
local now = now_ms()
local lease = ARGV[1]
local messages, leases, order = {}, {}, {}
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  local kind, seq = string.sub(field, 1, 1), string.sub(field, 2)
  if kind == 'm' then
    messages[seq] = value
    order[#order + 1] = { tonumber(seq), seq }
  elseif kind == 'l' then
    leases[seq] = value
  end
end
table.sort(order, function(a, b) return a[1] < b[1] end)
local record = string.format('%d', now + tonumber(ARGV[2])) .. ' ' .. lease
local out, marks = {}, {}
for _, entry in ipairs(order) do
  local seq = entry[2]
  local held = leases[seq]
  local visible = true
  if held then
    local space = string.find(held, ' ', 1, true)
    if space then
      local until_ms = tonumber(string.sub(held, 1, space - 1))
      local owner = string.sub(held, space + 1)
      visible = owner == lease or until_ms == nil or until_ms <= now
    end
  end
  if visible then
    out[#out + 1] = messages[seq]
    marks[#marks + 1] = 'l' .. seq
    marks[#marks + 1] = record
  end
end
chunked('HSET', key, marks)
return out
