#!/usr/bin/env bash
# Prepare a bare H200 device machine (see ../../../shared/device/README.md): install the carried wheels into
# /tmp/site and this checkout (core + every plugin folder, editable, no deps). Source it from the repository root:
#   source benchmarks/device/setup.sh
# MINISGL_COMMIT: the commit that offline.py and online.py record (the device copy has no git metadata, so
# name it in the device command: MINISGL_COMMIT=abc1234 source benchmarks/device/setup.sh)
export MINISGL_COMMIT=${MINISGL_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1 PATH=/usr/local/cuda/bin:$PATH CUDA_HOME=/usr/local/cuda NCCL_NVLS_ENABLE=0
SITE=/tmp/site
mkdir -p "$SITE"
# once per machine: in session 10, each later call on a warm machine that installed the wheels again saw
# its first engine start take 75-108 s instead of 12-19 s (likely FlashInfer's JIT rebuilding against the
# re-installed sources), so a warm machine keeps what the first call installed
if [ ! -f "$SITE/.installed" ]; then
  if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  fi
  [ -f .whl/jit.tar.xz ] && tar -xJf .whl/jit.tar.xz -C / 2>/dev/null
  touch "$SITE/.installed"
fi
export PYTHONPATH=$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages:$PWD
# test-only packages the image may lack (jsonschema for the structured-output tests), from .whl-extra/
if [ -d .whl-extra ] && ! python3 -c "import jsonschema" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl-extra/*.whl
fi
plugins=()
for p in plugins/*/; do [ -f "$p/pyproject.toml" ] && plugins+=(-e "$p"); done
python3 -m pip install -q --no-deps --no-build-isolation -e . "${plugins[@]}" 2>&1 | grep -v -i "warning" | tail -3
python3 -m minisgl_core plugins
