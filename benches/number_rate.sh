#!/usr/bin/env bash
# `veneer number` on real therapeutic chains, whole process, chain type not given: chains per
# second of wall time and per CPU-second (user + system), for issue 12's numbering target.
#
#   benches/number_rate.sh [COPIES] [RUNS]
#
# Input: the 50 VH and VL chains of the 25 Hu-mAb parental antibodies bundled in
# data/examples/humab25_parental.csv, repeated COPIES times (default 200, 10,000 chains);
# RUNS runs (default 3), each printed, so the spread shows.
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-200}
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
# name,vh,vl → one FASTA record per chain.
awk -F, 'NR > 1 { printf ">%s VH\n%s\n>%s VL\n%s\n", $1, $2, $1, $3 }' \
  data/examples/humab25_parental.csv > "$work/once.fa"
for _ in $(seq "$copies"); do cat "$work/once.fa"; done > "$work/many.fa"
chains=$(grep -c '>' "$work/many.fa")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for _ in $(seq "$runs"); do
  /usr/bin/time -f '%e %U %S' -o "$work/time" ./target/release/veneer number \
    --input "$work/many.fa" > "$work/out.jsonl"
  read -r wall user sys < "$work/time"
  errors=$(grep -c '"error"' "$work/out.jsonl" || true)
  python3 -c "
chains, wall, cpu = $chains, $wall, $user + $sys
print(f'{chains} chains ({$errors} errors): {wall:.2f} s wall, {cpu:.2f} CPU-s: '
      f'{chains / wall:,.0f} chains/s, {chains / cpu:,.0f} chains per CPU-second')"
done
