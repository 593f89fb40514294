#!/usr/bin/env bash
# Online A/B on one device machine: the synthetic multi-turn trace of online_h200.sh (256 requests, 64
# sessions) against two server flag sets, alternating, each at the given time scales (1 = the trace's rate,
# 0.25 = 4x, 0.1 = 10x). One JSON line per run goes to OUT/runs.jsonl (online.py --record). Run from the
# repository root after `source benchmarks/device/setup.sh`:
#   bash benchmarks/device/online_ab.sh OUT "FLAGS_A" "FLAGS_B" "1,0.25,0.1" [ROUNDS]
set -uo pipefail
out=${1:?usage: online_ab.sh OUT FLAGS_A FLAGS_B SCALES [ROUNDS]}; a=$2; b=$3; scales=$4; rounds=${5:-1}
mkdir -p "$out"
python benchmarks/traces.py synth --num-sessions 64 --turns 4 --rate 4 --think-time 2 --system-len 1024 \
  --num-system-prompts 4 --user-len 512 --output-len 128 --max-context 8192 --seed 0 --out "$out/trace.jsonl"
python -c "import sys; sys.path.insert(0, 'benchmarks'); from offline import wordlevel_tokenizer; \
from pathlib import Path; wordlevel_tokenizer(151936, Path('/tmp/wordlevel-tok'))"
base="--model benchmarks/models/qwen3-0.6b --load-format dummy --tokenizer /tmp/wordlevel-tok --attention flashinfer --page-size 64 --log-interval 2"
for round in $(seq 1 "$rounds"); do
  for side in A B; do
    flags=$a; [ "$side" = B ] && flags=$b
    timeout 280 python benchmarks/online.py --trace "$out/trace.jsonl" --launch "$base $flags" --label "$side$round" \
      --sweep "$scales" --out-dir "$out/$side$round" --record "$out/runs.jsonl" --warmup 8 \
      > "$out/$side$round.txt" 2>&1
    echo "$side$round rc $?: $(grep -c '' "$out/runs.jsonl" 2>/dev/null) runs recorded"
  done
done
