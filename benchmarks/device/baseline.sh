#!/usr/bin/env bash
# The same offline run with an older commit, on the same device machine (machines differ by several percent,
# so a change is only measured against a baseline run in the same call). Before the call, on this machine:
#   git worktree add .ab-base COMMIT && git -C .ab-base rev-parse --short HEAD > .ab-base/.ab-commit
# and carry it: run(carry=[".whl", ".ab-base"]). Then, from the repository root on the device, after setup.sh
# (for instance as verify_and_measure.sh's EXTRA):
#   bash benchmarks/device/baseline.sh "$R/ab.jsonl" [offline.py flags ...]
# The baseline's packages come first on PYTHONPATH, so its core and FlashInfer plugin are the ones imported.
# Remove the worktree afterwards: git worktree remove --force .ab-base
set -uo pipefail
out=${1:?usage: baseline.sh OUT.jsonl [offline.py flags]}
shift
base=$PWD/.ab-base
[ -d "$base" ] || { echo "no .ab-base worktree: git worktree add .ab-base COMMIT, and carry it" >&2; exit 2; }
commit=$(cat "$base/.ab-commit" 2>/dev/null || echo unknown)  # the device copy has no git metadata
flags=("$@")
[ ${#flags[@]} -eq 0 ] && flags=(--attention flashinfer --page-size 64)
cd "$base/benchmarks" || exit 2
PYTHONPATH=$base:$base/plugins/minisgl-flashinfer:$base/plugins/minisgl-flash-attn:${PYTHONPATH:-} \
  timeout 120 python offline.py "${flags[@]}" --label "base $commit ${flags[*]}" --out "$out"
