#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need, then runs them.
# Used as is by CI (.ci/run) and quoted first in the README.
set -euo pipefail
cd "$(dirname "$0")/.."

# A virtual display and Mesa's software OpenGL, for the test that opens a real window and
# screenshots it (the egui_kittest tests need no display); python3-venv for the tools below.
need=()
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb xauth libgl1-mesa-dri libegl1 libgl1 libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
# A single-node Slurm (with munge) for the test that submits a plan's array job, and an SSH
# server for the test that benchmarks on a "remote" device; both started by the tests
# themselves in a temporary folder, on free ports, and stopped at their end.
command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 \
    || need+=(slurm-wlm munge)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server openssh-client)
if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Python packages for the checks that compare with the reference tools: ONNX's checker, ONNX
# Runtime (also the library quantbench's `ort` backend loads) and numpy, in a virtual
# environment of the project's own (many distributions refuse a system-wide pip install).
# Tests call `python3`, and quantbench finds ONNX Runtime through it: this one, first on PATH.
venv="target/py"
# kubernetes-validate: the Kubernetes API's schemas, offline, for the emitted Indexed Job.
if ! "$venv/bin/python3" -c "import onnx, onnxruntime, numpy, kubernetes_validate" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
        "onnx==1.23.2" "onnxruntime==1.32.0" numpy "kubernetes-validate==1.37.0"
fi
export PATH="$PWD/$venv/bin:$PATH"

# The code is formatted and lint-free before anything runs (clippy in the release profile
# shares the test build's proc macros and build scripts).
cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings

cargo test --release --locked "$@"

# The tests that bring up their own Slurm cluster and SSH server (ignored by a plain
# `cargo test`, which cannot assume the daemons are installed).
cargo test --release --locked --test scheduler -- --ignored

# The one test that opens a real window is ignored without a display; run it here, under a
# virtual one (-a: the first free display number, so a stale lock cannot block it).
if [ -z "${DISPLAY:-}" ]; then
    xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" \
        cargo test --release --locked --test window -- --ignored
else
    cargo test --release --locked --test window -- --ignored
fi

# Installed like a desktop application: `cargo install --path .` works (sharing this build),
# and the .deb (cargo-deb, pinned, installed under target/) installs with dpkg and starts,
# on the command line and as a window under Xvfb on the sample it ships, from a folder
# that has no sample_data of its own.
cargo install --quiet --locked --path . --root target/install-check --target-dir target
target/install-check/bin/quantbench --version
if [ ! -x target/tools/bin/cargo-deb ]; then
    cargo install --quiet --locked cargo-deb --version 3.8.0 --root target/tools
fi
target/tools/bin/cargo-deb --no-build --locked --output target/debian/quantbench.deb
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO dpkg -i target/debian/quantbench.deb >/dev/null
elsewhere="$(mktemp -d)"
(
    cd "$elsewhere"
    /usr/bin/quantbench --version
    QUANTBENCH_DATA_DIR="$elsewhere/data" xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" \
        /usr/bin/quantbench screenshot --view tradeoff --out "$elsewhere/installed.png"
    python3 -c "import sys; d = open(sys.argv[1], 'rb').read(); assert d[:8] == b'\x89PNG\r\n\x1a\n' and len(d) > 20000, len(d)" "$elsewhere/installed.png"
)
echo "the installed quantbench opened its window on the sample it ships"
$SUDO dpkg -r quantbench >/dev/null
rm -rf "$elsewhere"
