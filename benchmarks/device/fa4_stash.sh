#!/usr/bin/env bash
# FlashAttention-4's compiler library is one 92 MB wheel, over one device call's carry limit: fetch-wheels.sh
# splits it in two. Call 1 carries .whl-fa4a and runs `bash benchmarks/device/fa4_stash.sh a`; call 2 (right
# after, while the machine is warm) carries .whl-fa4b and runs `bash benchmarks/device/fa4_stash.sh b`.
# FlashAttention-4 also imports tvm_ffi from .whl: on a fresh machine a third call carries .whl and sources
# benchmarks/device/setup.sh (or run the stash calls after one that did).
set -euo pipefail
mkdir -p /root/stash
if [ "$1" = a ]; then
  cp .whl-fa4a/* /root/stash/
else
  cp .whl-fa4b/* /root/stash/
  cat /root/stash/cu13.part.* > /root/stash/nvidia_cutlass_dsl_libs_cu13-4.8.1-cp312-cp312-manylinux_2_28_x86_64.whl
  rm /root/stash/cu13.part.*
  python3 -m pip install -q --no-index --no-deps --target /tmp/site /root/stash/*.whl
  PYTHONPATH=/tmp/site:/tmp/site/nvidia_cutlass_dsl/dsl_packages python3 -c "from flash_attn.cute import flash_attn_varlen_func; print('fa4 ok')"
fi
ls /root/stash | head
