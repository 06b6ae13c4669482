#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of bytes from outside (cargo-fuzz, libFuzzer): each
# [[bin]] of fuzz/Cargo.toml is a target, so none is forgotten.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]  -- each target runs that long (default 60); all
# targets unless some are named.
# New corpus entries go to fuzz/work/<target> (not committed); seeds are in fuzz/corpus.
# A crash stops the script and leaves the input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# FUZZ_SANITIZER=none builds without AddressSanitizer (faster to build and run; the parsers
# have no unsafe code but the new-flow record decoder's one read_unaligned).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags to rustc; the stable toolchain takes them with this set.
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}
if (($#)); then
    targets=("$@")
else
    mapfile -t targets < <(awk '/^\[\[bin\]\]/ { bin = 1; next } bin && /^name *=/ { gsub(/[" ]/, "", $0); sub(/^name=/, "", $0); print; bin = 0 }' fuzz/Cargo.toml)
fi
((${#targets[@]})) || { echo "no fuzz targets in fuzz/Cargo.toml" >&2; exit 1; }
# One build of all the targets (one cargo invocation), then each run starts at once; one
# target named: only it is built.
if ((${#targets[@]} == 1)); then
    cargo fuzz build --sanitizer "$sanitizer" "${targets[0]}"
else
    cargo fuzz build --sanitizer "$sanitizer"
fi
for target in "${targets[@]}"; do
    mkdir -p "fuzz/work/$target"
    echo "== $target (${secs}s)"
    cargo fuzz run --sanitizer "$sanitizer" "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1
done
