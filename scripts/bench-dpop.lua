-- wrk script: GET with a DPoP-bound token and a prepared proof per request (RFC 9449 §7.1). $PROOFS_FILE holds
-- the token on its first line and one proof per line after it (crates/loadtest/examples/dpop_proofs.rs). Each
-- thread walks its own interleaving of the proofs, so every request carries a proof never sent before; once they
-- are used up a thread starts over, and the replays are refused (counted as non-2xx by wrk).
local token
local proofs = {}
local index, step
local thread_counter = 0

function setup(thread)
  thread:set("id", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  for line in io.lines(os.getenv("PROOFS_FILE")) do
    if token == nil then token = line else proofs[#proofs + 1] = line end
  end
  step = tonumber(os.getenv("THREADS") or "2")
  index = 1 + id
end

function request()
  local proof = proofs[index]
  index = index + step
  if index > #proofs then index = 1 + id end
  return wrk.format("GET", nil, { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof })
end
