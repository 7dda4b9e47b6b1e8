-- wrk: every request asks for the next of $BENCH_USERS users (1, 2, ...,
-- N, 1, 2, ...). `__USER__` becomes the user's id in the JSON body read from
-- $BENCH_BODY_FILE (POSTed to the URL), or, without a body, in the path
-- $BENCH_PATH (a GET). The N requests are formatted once, up front.
local users = tonumber(os.getenv("BENCH_USERS") or "1")
local body_file = os.getenv("BENCH_BODY_FILE")
local path = os.getenv("BENCH_PATH")
local requests = {}
local n = 0

init = function(args)
  local body = nil
  if body_file then
    local file = assert(io.open(body_file, "rb"))
    body = file:read("*a")
    file:close()
  end
  for i = 1, users do
    local id = tostring(i)
    if body then
      requests[i] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
        (body:gsub("__USER__", id)))
    else
      requests[i] = wrk.format("GET", (path:gsub("__USER__", id)))
    end
  end
end

request = function()
  n = n % users + 1
  return requests[n]
end
