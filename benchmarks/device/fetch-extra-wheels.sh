#!/usr/bin/env bash
# Wheels the H200 needs beyond ../shared/device/fetch-wheels.sh (run that first): xgrammar and llguidance
# for the minisgl-xgrammar and minisgl-llguidance plugins into .whl/, and jsonschema with its dependencies, which the structured-output tests
# import, into .whl-extra/ (setup.sh installs those only when the device image lacks jsonschema). From the
# repository root:  bash benchmarks/device/fetch-extra-wheels.sh   then carry [".whl", ".whl-extra"].
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qxF "/.whl-extra/" .git/info/exclude 2>/dev/null || echo "/.whl-extra/" >> .git/info/exclude
dl() {  # dl DEST PKG==VER...  (cp312 manylinux x86_64: the device's Python)
  local dest=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dest" "$@"
}
mkdir -p .whl .whl-extra
dl .whl xgrammar==0.2.9 llguidance==1.9.1
dl .whl-extra jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0
du -sh .whl .whl-extra
