#!/usr/bin/env bash
# Runs the fuzz targets: `bash fuzz/run.sh [SECONDS] [TARGET...]` (default 300 s each, every
# target). Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain accepts its
# flags with RUSTC_BOOTSTRAP=1. Seeds come from fuzz/seeds/ (checked in); what the fuzzer
# learns goes to fuzz/corpus/ and crashes to fuzz/artifacts/ (neither checked in). A crash
# found becomes a test in tests/regression.rs.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-300}"
shift || true
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=(onnx_load quantize_graph dataset_desc csv npy session_ron)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cargo fuzz run -O --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        2> "target/$t.log" || echo "$t: stopped with a finding, see fuzz/target/$t.log"
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "target/$t.log" | sed "s/^/$t: /"
done
