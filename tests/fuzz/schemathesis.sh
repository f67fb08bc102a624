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

# Real resources, so the fuzzer reaches past 404 on routes that take an id: a few variants and
# jobs in every terminal state the fuzzer cannot easily make itself (completed, canceled). The
# queue runs, so a `Prefer: wait` on these ids answers at once.
curl() { command curl --silent --show-error --max-time 60 "$@"; }
field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
VH=EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS
VL=DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK
VARIANTS=()
JOBS=()
for i in 1 2 3; do
    v=$(curl "$BASE/v1/variants" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -d "{\"name\": \"seed-$i\", \"vh\": \"$VH\", \"vl\": \"$VL\"}" | field id)
    [ -n "$v" ] || fail "could not create a seed variant"
    VARIANTS+=("$v")
    j=$(curl "$BASE/v1/humanizations" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -H 'Prefer: wait=60' -d "{\"variant_id\": \"$v\"}" | field id)
    [ -n "$j" ] || fail "could not submit a seed job"
    JOBS+=("$j")
done
"$VENEER_BIN" queue pause >/dev/null
sleep 1.2
j=$(curl "$BASE/v1/humanizations" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"variant_id\": \"${VARIANTS[0]}\"}" | field id)
curl -X POST "$BASE/v1/humanizations/$j/cancel" -H "Authorization: Bearer $KEY" >/dev/null
JOBS+=("$j")
"$VENEER_BIN" queue resume >/dev/null
quoted() { printf '"%s", ' "$@" | sed 's/, $//'; }
# Half the examples use a real id, half a generated one (schemathesis dictionaries).
cat >"$WORK/schemathesis.toml" <<TOML
[dictionaries]
variants = { values = [$(quoted "${VARIANTS[@]}")] }
jobs = { values = [$(quoted "${JOBS[@]}")] }

[[operations]]
include-path-regex = "^/v1/variants/"
parameters = { "path.id" = { dictionary = "variants", probability = 0.5 } }

[[operations]]
include-path-regex = "^/v1/(humanizations|jobs)/"
parameters = { "path.id" = { dictionary = "jobs", probability = 0.5 } }

[[operations]]
include-name = "POST /v1/humanizations"
parameters = { "body.variant_id" = { dictionary = "variants", probability = 0.5 } }
TOML

# Run from the work directory so the config is found and the report and hypothesis database
# stay out of the repo.
cd "$WORK"
status=0
timeout "$MAX_TIME" "$SCHEMATHESIS" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
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
