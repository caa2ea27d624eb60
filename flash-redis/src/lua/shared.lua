-- Shared keys: many clients in one string key, so that Redis' own cost of a key (about 150 B
-- with its expiry) is paid once for all of them. The value, after a magic byte 0xFB (B), is
-- per client: id (16 bytes), deadline (I6, ms: when its state may go), length (I4), and the
-- client's value in common.lua's layout. A client past its deadline is dropped whenever the
-- key is written, and the key expires (PX) at the latest deadline of those it holds: nothing
-- else sweeps. The prologue has read the key into `raw` (a settle's common path may already
-- have overwritten it: `rewrite`). Here the key is walked once, keeping the other live
-- clients as slices of it; `raw` becomes this client's value, and `write_shared` writes the
-- key back with this client's new value.
local SHARED = 251
local now = tonumber(ARGV[1])
local runs, own, own_until, last = {}, nil, 0, 0
local shared_ok = true
if raw then
  if string.byte(raw, 1) ~= SHARED then
    shared_ok = false
  else
    local pos, total, from = 2, #raw, 2
    while pos <= total do
      if pos + 25 > total then
        shared_ok = false
        break
      end
      local until_, len = struct.unpack('>I6I4', raw, pos + 16)
      local stop = pos + 25 + len
      if stop > total then
        shared_ok = false
        break
      end
      if until_ <= now or string.sub(raw, pos, pos + 15) == member then
        if from < pos then
          runs[#runs + 1] = string.sub(raw, from, pos - 1)
        end
        if until_ > now then
          own, own_until = string.sub(raw, pos + 26, stop), until_
        end
        from = stop + 1
      elseif until_ > last then
        last = until_
      end
      pos = stop + 1
    end
    if shared_ok and from <= total then
      runs[#runs + 1] = string.sub(raw, from, total)
    end
  end
end
if not shared_ok then
  if rewrite then
    redis.call('SET', key, raw)
  end
  return redis.error_reply('flash-redis: the key holds something that is not flash data')
end
raw = own

-- Writes the key: the other live clients, and this one's `value` to go at `until_` (nil: this
-- client is gone). Answers the value written ('' when nobody is left and the key is deleted).
local function write_shared(value, until_)
  local out = string.char(SHARED) .. table.concat(runs)
  local latest = last
  if value then
    out = out .. member .. struct.pack('>I6I4', until_, #value) .. value
    latest = math.max(latest, until_)
  end
  if #out == 1 then
    redis.call('DEL', key)
    return ''
  end
  redis.call('SET', key, out, 'PX', string.format('%d', math.max(latest - now, 1)))
  return out
end
