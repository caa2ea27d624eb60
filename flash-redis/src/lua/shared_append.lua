-- append's common paths (see append.lua): a client absent from the key gets the value the
-- caller packed; one holding only recent operations, those still in the window and the new one.
local offered = (#ARGV - 9) / 2
local value, answer = ARGV[5], nil
if raw then
  value, answer = append_to_ops(raw, now)
end
if value then
  write_shared(value, now + tonumber(ARGV[6]))
  return { 1, offered }
end
if answer then
  return answer
end
