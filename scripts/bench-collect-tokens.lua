-- wrk script: client_credentials at /token, writing every access token to $TOKENS_FILE.<thread> (one per line;
-- one file per thread, since buffered appends from several threads to one file interleave mid-line).
local file
local thread_counter = 0
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("BASIC") or "")

function setup(thread)
  thread:set("id", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  file = io.open(os.getenv("TOKENS_FILE") .. "." .. id, "w")
end

function response(status, headers, body)
  local token = body:match('"access_token":"([^"]+)"')
  if token then file:write(token, "\n") file:flush() end
end
