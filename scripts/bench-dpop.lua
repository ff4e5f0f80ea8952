-- wrk script: GET with a DPoP-bound token and a prepared proof per request (RFC 9449 §7.1). Each line of
-- $PROOFS_FILE is `TOKEN PROOF` (crates/loadtest/examples/dpop_proofs.rs, `resource` mode: 64 keys, each with its
-- own token, taken in turn, so no key holds more than its share of the resource's replay cache). Each thread walks
-- its own interleaving of the lines, so every request carries a proof never sent before; once they are used up a
-- thread starts over, and the replays are refused (counted as non-2xx by wrk).
local tokens, proofs = {}, {}
local index, step
local thread_counter = 0

function setup(thread)
  thread:set("id", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  for line in io.lines(os.getenv("PROOFS_FILE")) do
    local token, proof = line:match("^(%S+) (%S+)$")
    tokens[#tokens + 1] = token
    proofs[#proofs + 1] = proof
  end
  step = tonumber(os.getenv("THREADS") or "2")
  index = 1 + id
end

function request()
  local token, proof = tokens[index], proofs[index]
  index = index + step
  if index > #proofs then index = 1 + id end
  return wrk.format("GET", nil, { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof })
end
