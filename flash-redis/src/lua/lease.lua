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
local value = lease_unheld(raw, now)
if value ~= nil then
  if value then
    redis.call('SET', key, value, 'KEEPTTL')
  end
  return value
end
