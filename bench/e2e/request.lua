-- wrk script for bench/e2e_bench.sh: the same request the Megaki client
-- sends (the 5 bytes "hello" as a POST body; h2load sends the same with
-- -d). Set once at load time, so wrk builds the request once and scripts
-- nothing per request.
wrk.method = "POST"
wrk.body = "hello"
wrk.headers["Content-Type"] = "application/octet-stream"
