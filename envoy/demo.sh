#!/usr/bin/env bash
# Run the demo sandbox in the foreground: mock functions + real Envoy with
# the filter. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY=${ENVOY:-.venv/bin/envoy}
FUNCTIONS=target/debug/mock-functions
pids=()

stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

echo "demo: starting the mock functions on 127.0.0.1:8081"
setsid "$FUNCTIONS" --listen 127.0.0.1:8081 &
pids+=($!)
# GraphiQL's assets (built by `make demo` into dist/graphiql), served with
# CORS: the page loads them as module scripts from another origin.
echo "demo: serving GraphiQL's assets on 127.0.0.1:8088"
setsid python3 -c '
import functools, http.server
class Assets(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("access-control-allow-origin", "*")
        super().end_headers()
    def log_message(self, *args):
        pass
handler = functools.partial(Assets, directory="dist/graphiql")
http.server.ThreadingHTTPServer(("127.0.0.1", 8088), handler).serve_forever()
' &
pids+=($!)
echo "demo: starting Envoy with the filter (admin on 127.0.0.1:9901)"
setsid "$ENVOY" -c envoy/envoy.yaml --concurrency 1 --log-level warn &
pids+=($!)

echo "demo: waiting for Envoy to be ready"
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null && break
  sleep 0.1
done

cat <<'MSG'

graphql-aggregator demo: GraphQL at http://127.0.0.1:10000/graphql (Ctrl-C stops it)

GraphiQL: open http://127.0.0.1:10000/graphql in a browser

Try the seed query:

  curl -s http://127.0.0.1:10000/graphql -H 'content-type: application/json' \
    -d '{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}'

or fifty users and their orders in two function calls:

  curl -s http://127.0.0.1:10000/graphql -H 'content-type: application/json' \
    -d '{"query":"{ users { id name orders { id amount } } }"}'

Function call counts: curl -s http://127.0.0.1:8081/_stats
MSG

wait -n
