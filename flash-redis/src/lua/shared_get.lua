local key = KEYS[1]
local raw = redis.call('GET', key)
local rewrite = false
