#!/usr/bin/env bash
# Same-process-code A/B of two offline.py flag sets on one device machine, alternating A, B, A, B, ... (machines
# and even processes on one machine differ by a few percent, so one run of each proves little). Run from the
# repository root after setup.sh:
#   bash benchmarks/device/ab_flags.sh OUT_DIR "FLAGS A" "FLAGS B" [REPEATS]
# Appends every run to OUT_DIR/ab.jsonl; the first repeat of each also writes a step trace (OUT_DIR/trace-a.json,
# OUT_DIR/trace-b.json). Both flag sets get --attention flashinfer --page-size 64 unless they override them.
set -uo pipefail
out=${1:?usage: ab_flags.sh OUT_DIR "FLAGS A" "FLAGS B" [REPEATS]}
a=$2
b=$3
repeats=${4:-2}
mkdir -p "$out"
cd benchmarks || exit 2
for i in $(seq 1 "$repeats"); do
  for side in a b; do
    flags=$a
    [ "$side" = b ] && flags=$b
    trace=()
    [ "$i" = 1 ] && trace=(--step-trace "$out/trace-$side.json")
    # shellcheck disable=SC2086  # the flag sets are word lists
    timeout 150 python offline.py --attention flashinfer --page-size 64 $flags --label "$side$i $flags" \
      "${trace[@]}" --out "$out/ab.jsonl" > "$out/log-$side$i.txt" 2>&1
    echo "$side$i rc $? | $flags | $(grep -o '"throughput_tok_s": [0-9.]*' "$out/log-$side$i.txt" | tail -1)"
  done
done
