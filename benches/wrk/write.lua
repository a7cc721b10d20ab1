-- wrk script: POST /credentials/write with a valid body (the CLI's document form) and the bench's bearer token.
-- Every request carries the same expiresAt, which is never older than the file's: each write is applied.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACP_BRIDGE_BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("ACP_BRIDGE_BENCH_BODY")
