-- Shared keys: many clients in one string key, so that Redis' own cost of a key (about 150 B
-- with its expiry) is paid once for all of them. The value, after a magic byte 0xFB (B), is
-- per client: id (16 bytes), deadline (I6, ms: when its state may go), length (I4), and the
-- client's value in the layout above. A client past its deadline is dropped whenever the key
-- is written, and the key expires (PX) at the latest deadline of those it holds: nothing else
-- sweeps. The prologue has read the key into `raw` (a settle's common path may already have
-- overwritten it: `rewrite`); here `raw` becomes this client's value, and the writes of the
-- helpers above are redefined to write the whole key.
local SHARED = 251
local now = tonumber(ARGV[1])

-- The clients of a shared key's value still live at `now`, as {id, deadline, value}, and the
-- index of `id` among them (nil: absent); nil when the value is not flash's.
local function members_of(value, id)
  local list, index = {}, nil
  if not value then
    return list, nil
  end
  if string.byte(value, 1) ~= SHARED then
    return nil
  end
  local pos, total = 2, #value
  while pos <= total do
    if pos + 25 > total then
      return nil
    end
    local until_, len = unpack('>I6I4', value, pos + 16)
    if pos + 25 + len > total then
      return nil
    end
    if until_ > now then
      local who = sub(value, pos, pos + 15)
      list[#list + 1] = { who, until_, sub(value, pos + 26, pos + 25 + len) }
      if who == id then
        index = #list
      end
    end
    pos = pos + 26 + len
  end
  return list, index
end

local members, mine = members_of(raw, member)
if not members then
  if rewrite then
    redis.call('SET', key, raw)
  end
  return redis.error_reply(NOT_FLASH)
end
raw = mine and members[mine][3] or nil

-- Writes the key from `members` (deleted when none is left); answers the value written.
local function write_members()
  if #members == 0 then
    redis.call('DEL', key)
    return ''
  end
  local parts, last = { string.char(SHARED) }, 0
  for i = 1, #members do
    local m = members[i]
    parts[#parts + 1] = m[1] .. pack('>I6I4', m[2], #m[3]) .. m[3]
    last = math.max(last, m[2])
  end
  local value = table.concat(parts)
  redis.call('SET', key, value, 'PX', string.format('%d', math.max(last - now, 1)))
  return value
end

-- The per-client writes of common.lua, for a client among others.
local function store(_, _, window, expires, ops, leases, msgs)
  if #msgs == 0 and #ops == 0 then
    if mine then
      table.remove(members, mine)
      mine = nil
    end
  else
    local entry = { member, deadline(expires, ops, msgs, window), encode(expires, ops, leases, msgs) }
    if mine then
      members[mine] = entry
    else
      members[#members + 1] = entry
      mine = #members
    end
  end
  write_members()
end

-- A lease keeps the client's deadline; the store reads its messages from the whole key.
local function keep(_, value)
  members[mine][3] = value
  return write_members()
end

local function restore()
  write_members()
end
