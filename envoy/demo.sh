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

setsid "$FUNCTIONS" --listen 127.0.0.1:8081 &
pids+=($!)
setsid "$ENVOY" -c envoy/envoy.yaml --concurrency 1 --log-level warn &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null && break
  sleep 0.1
done

cat <<'MSG'

graphql-aggregator demo: GraphQL at http://127.0.0.1:10000/graphql (Ctrl-C stops it)

Try the seed query:

  curl -s http://127.0.0.1:10000/graphql -H 'content-type: application/json' \
    -d '{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}'

or fifty users and their orders in two function calls:

  curl -s http://127.0.0.1:10000/graphql -H 'content-type: application/json' \
    -d '{"query":"{ users { id name orders { id amount } } }"}'

Function call counts: curl -s http://127.0.0.1:8081/_stats
MSG

wait -n
