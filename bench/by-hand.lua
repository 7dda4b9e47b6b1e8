-- wrk: a client building the seed page by hand, one call after the other
-- on each connection: $BENCH_PATH_1, then $BENCH_PATH_2, then again.
local paths = { os.getenv("BENCH_PATH_1"), os.getenv("BENCH_PATH_2") }
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n - 1) % 2 + 1])
end
