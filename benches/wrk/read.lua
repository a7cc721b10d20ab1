-- wrk script: POST /credentials/read with the bench's bearer token (ACP_BRIDGE_BENCH_TOKEN).
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACP_BRIDGE_BENCH_TOKEN")
