-- POST the body in env BENCH_BODY_FILE; stops each thread after BENCH_MAX_REQUESTS/threads answers.
local body_file = os.getenv("BENCH_BODY_FILE")
local handle = io.open(body_file, "r")
wrk.method = "POST"
wrk.body = handle:read("*a")
handle:close()
wrk.headers["Content-Type"] = "application/json"
dofile(os.getenv("BENCH_WRK_DIR") .. "/bounded.lua")
