#!/usr/bin/env bash
# `veneer number` against ANARCI on the same chains, whole process, chain type not given.
#
#   benches/number_vs_anarci.sh [COPIES]
#
# Input: the 518 oracle chains of tests/fixtures/chains.fasta (+ flanked ones), repeated COPIES
# times for veneer (default 40, ~21,000 chains) and once for ANARCI (it runs ~80 chains/s).
# Needs ANARCI for the comparison (`pip install anarci`, `apt-get install hmmer`); without it,
# only veneer is measured. Prints chains/s for each and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-40}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
cat tests/fixtures/chains.fasta tests/fixtures/with_flanks.fasta > "$work/once.fa"
once=$(grep -c '>' "$work/once.fa")
for _ in $(seq "$copies"); do cat "$work/once.fa"; done > "$work/many.fa"
many=$((once * copies))

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1 / ($3 - $2):,.0f}')"; }

start=$(now)
./target/release/veneer number --input "$work/many.fa" > "$work/veneer.jsonl" || true
end=$(now)
veneer_rate=$(python3 -c "print($many / ($end - $start))")
printf 'veneer number: %d chains in %.2f s = %s chains/s (%s cores available)\n' \
  "$many" "$(python3 -c "print($end - $start)")" "$(rate "$many" "$start" "$end")" "$(nproc)"

if command -v ANARCI >/dev/null && command -v hmmscan >/dev/null; then
  start=$(now)
  # ANARCI's CLI defaults to the human and mouse models (its --use_species takes one species).
  ANARCI --hmmerpath "$(dirname "$(command -v hmmscan)")" -i "$work/once.fa" --scheme kabat \
    -o "$work/anarci.txt" >/dev/null 2>&1 || true
  end=$(now)
  anarci_rate=$(python3 -c "print($once / ($end - $start))")
  printf 'ANARCI:        %d chains in %.2f s = %s chains/s\n' \
    "$once" "$(python3 -c "print($end - $start)")" "$(rate "$once" "$start" "$end")"
  python3 -c "print(f'ratio: veneer is {$veneer_rate / $anarci_rate:,.0f}x ANARCI')"
else
  echo "ANARCI not installed: pip install anarci; apt-get install hmmer"
fi
