#!/usr/bin/env bash
# Mutation check: each tests/mutants/*.patch breaks one key guarantee on
# purpose; the tests its "Tests:" line names must then fail.
#   scripts/mutants.sh [NAME ...]    all mutants, or those named (file
#                                    name without .patch)
#   scripts/mutants.sh --list        what each mutant breaks, its tests
# In a scratch copy of the work tree (never this one), with one build dir
# reused across mutants, it first runs the named tests on the unmutated
# code (they must pass, or a "kill" would prove nothing), then for each
# mutant: apply, build, run its tests, revert. A mutant whose tests all
# pass SURVIVED; one that no longer applies or no longer builds is STALE
# (code moved: refresh the patch). Exit status 1 if any survived or is
# stale. See docs/testing.md for when to run it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)

header() { # header FIELD PATCH: the value of "FIELD: ..." in the header
	sed -n "/^diff --git/q;s/^$1: *//p" "$2" | head -n 1
}

patches=()
if [ "${1:-}" = --list ]; then
	for p in tests/mutants/*.patch; do
		printf '%-34s %s\n%-34s   tests: %s\n' "$(basename "$p" .patch)" \
			"$(header Mutant "$p")" "" "$(header Tests "$p")"
	done
	exit 0
elif [ $# -gt 0 ]; then
	for n in "$@"; do patches+=("tests/mutants/${n%.patch}.patch"); done
else
	patches=(tests/mutants/*.patch)
fi
for p in "${patches[@]}"; do
	[ -f "$p" ] || { echo "no such mutant: $p" >&2; exit 2; }
done

scratch=$(mktemp -d /tmp/qkdn-mutants.XXXXXX)
# tests run clients as another uid (test_ak_uid): the build must be
# reachable by them, as a checkout is
chmod 0755 "$scratch"
trap 'rm -rf "$scratch"' EXIT
# the tracked and new files as they are now (files deleted but not yet
# committed left out), without build output
git ls-files -co --exclude-standard -z |
	while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done |
	tar -c --null -T - | tar -x -C "$scratch"
build="$scratch/build"
cmake -S "$scratch" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

run_tests() { # run_tests LOG TEST...: 0 if every named test passed
	local log=$1 re
	shift
	re="^($(IFS='|'; echo "$*"))\$"
	ctest --test-dir "$build" -R "$re" --timeout 300 \
		--output-on-failure >"$log" 2>&1 || return 1
	# a name that matched no test must not count as passing
	[ "$(grep -c 'Test *#' "$log")" -eq $# ]
}

echo "== building the unmutated tree"
cmake --build "$build" -j"$(nproc)" >"$scratch/build.log" 2>&1 ||
	{ cat "$scratch/build.log"; exit 1; }
all=()
for p in "${patches[@]}"; do
	read -r -a t <<<"$(header Tests "$p")"
	[ ${#t[@]} -gt 0 ] || { echo "$p: no Tests: line" >&2; exit 2; }
	all+=("${t[@]}")
done
mapfile -t all < <(printf '%s\n' "${all[@]}" | sort -u)
echo "== baseline: ${all[*]}"
run_tests "$scratch/baseline.log" "${all[@]}" ||
	{ cat "$scratch/baseline.log"; echo "baseline fails: fix the tests first" >&2; exit 1; }

killed=0 survived=0 stale=0
for p in "${patches[@]}"; do
	name=$(basename "$p" .patch)
	read -r -a t <<<"$(header Tests "$p")"
	t0=$(date +%s)
	if ! git -C "$scratch" apply "$root/$p" 2>"$scratch/apply.log"; then
		printf '%-40s STALE (does not apply: %s)\n' "$name" \
			"$(head -n 1 "$scratch/apply.log")"
		stale=$((stale + 1))
		continue
	fi
	if ! cmake --build "$build" -j"$(nproc)" >"$scratch/build.log" 2>&1; then
		printf '%-40s STALE (does not build)\n' "$name"
		stale=$((stale + 1))
	elif run_tests "$scratch/$name.log" "${t[@]}"; then
		printf '%-40s SURVIVED (%s)\n' "$name" "${t[*]}"
		survived=$((survived + 1))
	else
		failed=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p' "$scratch/$name.log" | tr '\n' ' ')
		printf '%-40s killed by %s(%d s)\n' "$name" "$failed" $(($(date +%s) - t0))
		# the first failure the tests printed: killed for the right reason?
		grep -m1 -E '^FAIL|\[  FAILED  \]|^FAILED' "$scratch/$name.log" |
			cut -c1-160 | sed 's/^/    /' || true
		killed=$((killed + 1))
	fi
	git -C "$scratch" apply -R "$root/$p"
done
echo "== $killed killed, $survived survived, $stale stale of ${#patches[@]} in $(($(date +%s) - start)) s"
[ "$survived" -eq 0 ] && [ "$stale" -eq 0 ]
