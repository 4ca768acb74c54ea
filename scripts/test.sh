#!/usr/bin/env bash
# The whole test suite: set up, build, then unit and integration tests on
# the normal build, again under AddressSanitizer + UBSan, the decoder fuzzer
# for a bounded time, and a formatting check.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/setup.sh

echo "== tests (RelWithDebInfo build)"
ctest --test-dir build --output-on-failure --timeout 300

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQKDN_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure --timeout 600

echo "== decoder fuzzing"
bash scripts/fuzz.sh build-fuzz

echo "== formatting (clang-format, .clang-format)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

echo "== all tests passed in $(($(date +%s) - start)) s"
