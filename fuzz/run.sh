#!/usr/bin/env bash
# Coverage-guided fuzzing of the L7 request parser, the chunked validator, the VRRP
# advertisement decoder, the sync decoder, the SIP Call-ID extractor and the FTP control-line
# parser (cargo-fuzz, libFuzzer).
# Usage: fuzz/run.sh [SECONDS]  -- each target runs that long (default 60).
# New corpus entries go to fuzz/work/<target> (not committed); seeds are in fuzz/corpus.
# A crash stops the script and leaves the input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# FUZZ_SANITIZER=none builds without AddressSanitizer (faster; the parsers have no unsafe code).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags to rustc; the stable toolchain takes them with this set.
export RUSTC_BOOTSTRAP=1
for target in http_request chunked_body vrrp_packet sync_message sip_call_id ftp_command; do
    mkdir -p "fuzz/work/$target"
    cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1
done
