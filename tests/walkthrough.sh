#!/usr/bin/env bash
# The README's curl walk-through, run as written against a fresh server and checked.
# Usage: tests/walkthrough.sh [path/to/veneer]   (tests/walkthrough.rs runs it in CI)
set -euo pipefail

VENEER_BIN=${1:-${VENEER_BIN:-target/release/veneer}}
WORK=$(mktemp -d)
export VENEER_DB="$WORK/veneer.db"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "walkthrough: $*" >&2; exit 1; }
field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
curl() { command curl --silent --show-error --max-time 60 "$@"; }

# 1. Start the server. The first start creates a default organization and prints its key once.
"$VENEER_BIN" serve --listen 127.0.0.1:0 >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!
for _ in $(seq 1 200); do grep -q '^listening on ' "$WORK/stdout" && break; sleep 0.05; done
VENEER=$(sed -n 's/^listening on //p' "$WORK/stdout")
KEY=$(sed -n 's/^api key: //p' "$WORK/stdout")
[ -n "$VENEER" ] && [ -n "$KEY" ] || fail "no address or key printed"

# ---- the walk-through, as the README shows it ----
# 2. Register a variant (VH + VL).
curl "$VENEER/v1/variants" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"name": "AntiCD28",
       "vh": "EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS",
       "vl": "DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK"}' \
  >"$WORK/variant.json"
VARIANT=$(field id <"$WORK/variant.json")
[ -n "$VARIANT" ] || fail "variant not created: $(cat "$WORK/variant.json")"

# 3. Submit a humanization and wait up to 30 s for it (200 when done, 202 if still running).
curl -i "$VENEER/v1/humanizations" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -H 'Prefer: wait=30' -H 'Idempotency-Key: anticd28-run-1' \
  -d "{\"variant_id\": \"$VARIANT\"}" >"$WORK/submit.txt"
grep -q '^HTTP/1.1 200' "$WORK/submit.txt" || fail "submit did not finish: $(head -1 "$WORK/submit.txt")"
grep -qi '^preference-applied: wait=30' "$WORK/submit.txt" || fail "no Preference-Applied"
JOB=$(tail -1 "$WORK/submit.txt" | field id)

# 4. Poll it (what a client without Prefer: wait does).
curl "$VENEER/v1/humanizations/$JOB" -H "Authorization: Bearer $KEY" >"$WORK/job.json"
[ "$(field status <"$WORK/job.json")" = completed ] || fail "job not completed"
grep -q '"strategy":"cdr_grafting"' "$WORK/job.json" || fail "no cdr_grafting result"

# 5. Cancel: pause the queue so the job stays pending, submit, cancel, resume.
"$VENEER_BIN" queue pause
sleep 1
JOB2=$(curl "$VENEER/v1/humanizations" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d "{\"variant_id\": \"$VARIANT\"}" | field id)
curl -X POST "$VENEER/v1/humanizations/$JOB2/cancel" -H "Authorization: Bearer $KEY" >"$WORK/cancel.json"
[ "$(field status <"$WORK/cancel.json")" = canceled ] || fail "not canceled: $(cat "$WORK/cancel.json")"
"$VENEER_BIN" queue resume

# 6. The ledger shows two debits and one refund.
curl "$VENEER/v1/credits/ledger" -H "Authorization: Bearer $KEY" >"$WORK/ledger.json"
[ "$(grep -o '"reason":"refund"' "$WORK/ledger.json" | wc -l)" -eq 1 ] || fail "expected one refund"
[ "$(grep -o '"reason":"debit"' "$WORK/ledger.json" | wc -l)" -eq 2 ] || fail "expected two debits"
# ---- end of the walk-through ----

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "the server did not exit 0 on SIGTERM"
SERVER_PID=
echo "walkthrough: ok"
