-- GET the URL given to wrk; stops each thread after BENCH_MAX_REQUESTS/threads answers.
dofile(os.getenv("BENCH_WRK_DIR") .. "/bounded.lua")
