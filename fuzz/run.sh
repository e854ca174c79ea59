#!/usr/bin/env bash
# Run every fuzz target for a short time (default 30 s each; needs the nightly toolchain and
# `cargo install cargo-fuzz`). Inputs kept in regressions/<target>/ (seeds, and crashes found
# earlier copied there from artifacts/<target>/) are replayed first on every run.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target" "regressions/$target"
  cargo +nightly fuzz run -O "$target" "corpus/$target" "regressions/$target" -- \
    -max_total_time="$seconds"
done
