#!/usr/bin/env bash
# Fuzzes the running API against its own served /openapi.json with schemathesis (PyPI):
# no request may get a 5xx, and every response must conform to the document (status code,
# content type, headers, body schema). Bounded: a fixed number of examples per operation and a
# wall-clock cap for the whole run.
# Usage: tests/fuzz/schemathesis.sh [path/to/veneer]   (.ci/run runs it after the tests)
# Needs `schemathesis` on PATH, or SCHEMATHESIS=/path/to/schemathesis.
set -euo pipefail

VENEER_BIN=${1:-${VENEER_BIN:-target/release/veneer}}
SCHEMATHESIS=${SCHEMATHESIS:-schemathesis}
MAX_EXAMPLES=${MAX_EXAMPLES:-20}
MAX_TIME=${MAX_TIME:-240}
WORK=$(mktemp -d)
export VENEER_DB="$WORK/veneer.db"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "schemathesis.sh: $*" >&2; exit 1; }

# Rate limits and quota high enough that the fuzzer measures the API, not the token bucket;
# a short stage delay keeps jobs cheap. Plenty of credits so submits are not all 402.
"$VENEER_BIN" serve --listen 127.0.0.1:0 --read-rate 100000 --read-burst 100000 \
    --write-rate 100000 --write-burst 100000 --daily-write-quota 1000000 \
    >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!
for _ in $(seq 1 200); do grep -q '^listening on ' "$WORK/stdout" && break; sleep 0.05; done
BASE=$(sed -n 's/^listening on //p' "$WORK/stdout")
KEY=$(sed -n 's/^api key: //p' "$WORK/stdout")
[ -n "$BASE" ] && [ -n "$KEY" ] || fail "no address or key printed"
ORG=$("$VENEER_BIN" orgs list | head -1 | awk '{print $1}')
"$VENEER_BIN" credits grant --org "$ORG" --amount 100000 >/dev/null || true

# Run from the work directory so the report and hypothesis database stay out of the repo.
cd "$WORK"
status=0
timeout "$MAX_TIME" "$SCHEMATHESIS" run "$BASE/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $KEY" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 30 \
    --workers 1 \
    --seed "${SEED:-42}" \
    --suppress-health-check all \
    || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- server log (tail) ---" >&2
    tail -20 "$WORK/stderr" >&2
    fail "schemathesis found problems (exit $status)"
fi
echo "schemathesis.sh: ok"
