-- wrk script: client_credentials at /token with HTTP Basic (BASIC = base64 of "id:secret") and a prepared DPoP
-- proof per request (RFC 9449 §5): $PROOFS_FILE holds one proof per line (crates/loadtest/examples/dpop_proofs.rs,
-- `token` mode). Each thread walks its own interleaving, so every request carries a proof never sent before;
-- once they are used up a thread starts over, and the replays are refused (counted as non-2xx by wrk).
local proofs = {}
local index, step
local thread_counter = 0

function setup(thread)
  thread:set("id", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  for line in io.lines(os.getenv("PROOFS_FILE")) do proofs[#proofs + 1] = line end
  step = tonumber(os.getenv("THREADS") or "2")
  index = 1 + id
end

function request()
  local proof = proofs[index]
  index = index + step
  if index > #proofs then index = 1 + id end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. (os.getenv("BASIC") or ""),
    ["DPoP"] = proof,
  }, "grant_type=client_credentials")
end
