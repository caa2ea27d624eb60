-- settle: KEYS = {client};
-- ARGV = {now ms, op, dedupe window ms, lease id, "consumed" | "released", ttl ms,
--         expected sha1, consumed value, its PX (from the lease's answer, or '' x 3),
--         max message size, max messages, max bytes, size, record, size, record, ...}
-- Ends the lease: deletes (consumed) or makes visible again (released) the messages this lease
-- still holds; then appends the messages that fit the limits, as append does. Returns
-- {1, kept} when applied, {0, kept} when `op` had already been applied (a retry; see append).
-- Without messages to append a retry is harmless by itself, and the op is not recorded.
local key = KEYS[1]
local appending = #ARGV >= 14
local raw
local rewrite = false
if ARGV[7] ~= '' and not appending and ARGV[5] == 'consumed' then
  -- The common end of a read: consuming what the lease took, nothing to append. Write what
  -- the caller computed from the lease's answer and read the old value in the same command;
  -- when the value is still the one the lease wrote, that was the whole settle.
  if ARGV[8] == '' then
    raw = redis.call('GETDEL', key)
  else
    raw = redis.call('SET', key, ARGV[8], 'PX', ARGV[9], 'GET')
  end
  if not raw then
    if ARGV[8] ~= '' then
      redis.call('DEL', key)
    end
    return { 1, 0 }
  end
  if redis.sha1hex(raw) == ARGV[7] then
    return { 1, 0 }
  end
  -- Changed since the lease (another append, lease or settle): settle from what it held, and
  -- write it back whatever happens below.
  rewrite = true
else
  raw = redis.call('GET', key)
end
if not raw and not appending then
  return { 1, 0 }
end
