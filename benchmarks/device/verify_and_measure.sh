#!/usr/bin/env bash
# One device call that verifies the GPU path and measures it (run from the repository root, carrying .whl):
#   bash benchmarks/device/verify_and_measure.sh [SUITE_LABEL ...]
# 1. the GPU tests (kernels, engine, model/builtin conformance, logit_bias, prompt logprobs, structured outputs with
# both grammar backends, FlashInfer conformance; the 15 slowest listed), 2. the offline
# benchmark's headline configurations (or the offline_suite labels given), 3. everything packed into ONE file,
# $OUT/results.tgz: the device returns only a few files per call, and a fresh machine is slow to start, so
# each step has its own time limit and a failed step does not stop the next.
# SUITE=0 skips step 2; SAVE_JIT=1 also returns FlashInfer's kernel cache. EXTRA="commands" runs last (from the repository root, results go to "$R"), e.g. an A/B run or kernel_micro.py.
# Budget: about 1 min set-up + up to 4 min tests (7 with a cold FlashInfer cache) + about 40 s per 0.6B configuration.
set -uo pipefail
OUT=${OUT:-/tmp/out}
R=$(mktemp -d)
source benchmarks/device/setup.sh > "$R/setup.log" 2>&1
nvidia-smi --query-gpu=name,clocks.max.sm,memory.used --format=csv > "$R/gpu.txt" 2>&1
timeout ${TEST_TIMEOUT:-420} python -m pytest -q -p no:cacheprovider --durations=15 tests/test_kernels.py \
  tests/test_gpu_engine.py tests/test_conformance_models.py tests/test_conformance_builtin.py tests/test_logit_bias.py \
  tests/test_prompt_logprobs.py tests/test_structured_outputs.py plugins/minisgl-flashinfer/tests \
  plugins/minisgl-xgrammar/tests plugins/minisgl-llguidance/tests > "$R/pytest.txt" 2>&1
echo "pytest rc $? | $(tail -1 "$R/pytest.txt")"
# SAVE_JIT=1: FlashInfer's compiled kernels as $OUT/jit.tar.xz (copy it to .whl/jit.tar.xz: setup.sh unpacks it)
[ "${SAVE_JIT:-0}" = 1 ] && mkdir -p "$OUT" && tar -cJf "$OUT/jit.tar.xz" -C / root/.cache/flashinfer 2>/dev/null
labels=("$@")
[ ${#labels[@]} -eq 0 ] && labels=("flashinfer p64" "flashinfer p16" "flashinfer p1")
only=()
for label in "${labels[@]}"; do only+=(--only "$label"); done
[ "${SUITE:-1}" = 0 ] || (cd benchmarks && timeout 400 python offline_suite.py --suite qwen3-0.6b --suite qwen3-14b "${only[@]}" \
  --out-dir "$R" --timeout 120) 2>&1 | tail -12
(cd benchmarks && timeout 90 python offline.py --attention flashinfer --page-size 64 --label "p64 traced" \
  --step-trace "$R/trace-p64.json" --out "$R/traced.jsonl" > "$R/traced.txt" 2>&1)
echo "traced: $(tail -1 "$R/traced.txt" | cut -c1-200)"
if [ -n "${EXTRA:-}" ]; then R="$R" bash -c "$EXTRA" > "$R/extra.txt" 2>&1; echo "extra rc $?"; fi
mkdir -p "$OUT" && tar -czf "$OUT/results.tgz" -C "$R" .
