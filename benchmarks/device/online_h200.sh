#!/usr/bin/env bash
# The online benchmark on the H200 (run from the repository root after `source benchmarks/device/setup.sh`):
# Qwen3-0.6B with dummy weights, radix vs naive cache, over a synthetic multi-turn trace at 1x, 4x and 10x
# its arrival rate. Results go to ${1:-benchmarks/results/online-h200}.
set -euo pipefail
OUTDIR=${1:-benchmarks/results/online-h200}
mkdir -p "$OUTDIR"
python benchmarks/traces.py synth --num-sessions 64 --turns 4 --rate 4 --think-time 2 --system-len 1024 \
  --num-system-prompts 4 --user-len 512 --output-len 128 --max-context 8192 --seed 0 \
  --out "$OUTDIR/trace-multiturn.jsonl"
python -c "import sys; sys.path.insert(0, 'benchmarks'); from offline import wordlevel_tokenizer; \
from pathlib import Path; wordlevel_tokenizer(151936, Path('/tmp/wordlevel-tok'))"
python benchmarks/online.py --trace "$OUTDIR/trace-multiturn.jsonl" \
  --launch "--model benchmarks/models/qwen3-0.6b --load-format dummy --tokenizer /tmp/wordlevel-tok --attention flashinfer --page-size 16" \
  --compare-caches radix,naive --sweep 1,0.25,0.1 --out-dir "$OUTDIR" --plot "$OUTDIR/latency-vs-load.png"
