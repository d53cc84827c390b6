#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need, then runs them.
# Used as is by CI (.ci/run) and quoted first in the README.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python packages for the checks that compare with the reference tools: ONNX's checker and
# ONNX Runtime (also the library quantbench's `ort` backend loads).
if ! python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "onnx==1.23.2" "onnxruntime==1.32.0" numpy
fi

cargo test --release --locked "$@"
