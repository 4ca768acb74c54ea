#!/usr/bin/env bash
# Fuzz the qkdn wire codec with libFuzzer (clang, ASan, UBSan).
#   scripts/fuzz.sh [BUILD_DIR]       default BUILD_DIR: build-fuzz/ in the repo
#   QKDN_FUZZ_SECONDS=600 scripts/fuzz.sh   run longer (default 60 s)
# Exits non-zero if libFuzzer finds a crash, leak or sanitizer error; the
# input that triggered it is left in BUILD_DIR/artifacts/. No network needed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/build-fuzz}" && cd "${1:-$root/build-fuzz}" && pwd)
seconds=${QKDN_FUZZ_SECONDS:-60}
cc=${CC:-clang}

cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1
        -fno-omit-frame-pointer -I"$root/proto" ${CFLAGS:-})
codec=("$root/proto/msg.c" "$root/proto/mp_scan.c" "$root/proto/err.c")
libs=(-lmsgpackc)

"$cc" "${cflags[@]}" -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined \
	"$root/tests/fuzz/fuzz_decode.c" "${codec[@]}" "${libs[@]}" \
	-o "$out/fuzz_decode"
"$cc" "${cflags[@]}" -I"$root/tests/common" "$root/tests/fuzz/gen_corpus.c" \
	"$root/tests/common/samples.c" "${codec[@]}" "${libs[@]}" \
	-o "$out/gen_corpus"

mkdir -p "$out/corpus" "$out/artifacts"
"$out/gen_corpus" "$out/corpus"

# libFuzzer adds the inputs it finds to corpus/, so later runs start there.
"$out/fuzz_decode" -max_total_time="$seconds" -max_len=65536 \
	-rss_limit_mb=2048 -artifact_prefix="$out/artifacts/" \
	-print_final_stats=1 "$out/corpus"
