-- Shared keys (`RedisStoreBuilder::shared_keys`): KEYS[1] holds every client hashed to it, and
-- the script's first argument is this client's id (16 bytes); the rest of ARGV is as in the
-- per-client script.
local member = table.remove(ARGV, 1)
