-- wrk script: GET with a bearer token from $TOKENS_FILE, using the slice of TOKENS_COUNT tokens starting at
-- TOKENS_OFFSET (default: all). Each thread walks its own interleaving of the slice, so every request carries a
-- different token until the slice is exhausted, then it starts over. TOKENS_COUNT=16 gives repeated tokens.
local tokens = {}
local index, first, last, step
local thread_counter = 0

function setup(thread)
  thread:set("id", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
  local offset = tonumber(os.getenv("TOKENS_OFFSET") or "0")
  local count = tonumber(os.getenv("TOKENS_COUNT") or "0")
  if count == 0 or offset + count > #tokens then count = #tokens - offset end
  first, last = offset + 1, offset + count
  step = tonumber(os.getenv("THREADS") or "2")
  index = first + id
end

function request()
  local token = tokens[index]
  index = index + step
  if index > last then index = first + id end
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end
