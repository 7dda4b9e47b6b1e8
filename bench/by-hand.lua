-- wrk: a client building the seed page by hand, two calls per page:
-- $BENCH_PATH_1, then $BENCH_PATH_2, then the next page. `__USER__` in the
-- paths becomes the page's user, the next of $BENCH_USERS (1, 2, ..., N, 1, ...).
local paths = { os.getenv("BENCH_PATH_1"), os.getenv("BENCH_PATH_2") }
local users = tonumber(os.getenv("BENCH_USERS") or "1")
local n = 0
request = function()
  local page = math.floor(n / 2)
  local path = paths[n % 2 + 1]
  n = n + 1
  return wrk.format("GET", (path:gsub("__USER__", tostring(page % users + 1))))
end
