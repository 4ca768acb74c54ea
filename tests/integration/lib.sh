# Shared set-up for integration tests: a temporary run directory, a
# generated two-node network file on free loopback ports, the real daemons
# started with `qkdn net up`, and teardown on exit. Source it from a test.
set -euo pipefail

: "${QKDN_BIN:?set by ctest: the build directory}"
BIN="$QKDN_BIN/bin"
QKDN="$BIN/qkdn"
TMP=$(mktemp -d /tmp/qkdn-test.XXXXXX)
# tests read the daemons' warnings (refusals) from their logs
[ "${QKDN_LOG_LEVEL:-2}" -ge 1 ] 2>/dev/null || export QKDN_LOG_LEVEL=2
RUN="$TMP/run"
CFG="$TMP/net.cnf"

fail() {
	echo "FAIL: $*" >&2
	for f in "$RUN"/*.log; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
	done
	[ ! -f "$TMP/stacks.txt" ] || { echo "--- stacks" >&2; head -n 300 "$TMP/stacks.txt" >&2; }
	exit 1
}

# launching CMD...: run CMD (which starts daemons and waits until they
# answer); if it takes longer than 8 s, record the threads of every daemon
# then running (gdb) so that a failure shows where a silent one waits
launching() {
	"$@" &
	local pid=$! waited=0
	while kill -0 "$pid" 2>/dev/null && [ $waited -lt 80 ]; do
		sleep 0.1
		waited=$((waited + 1))
	done
	if kill -0 "$pid" 2>/dev/null && command -v gdb >/dev/null; then
		local f
		for f in "$RUN"/*.pid; do
			[ -f "$f" ] || continue
			echo "== $f" >>"$TMP/stacks.txt"
			timeout 20 gdb -batch -p "$(cat "$f")" \
				-ex 'thread apply all bt' >>"$TMP/stacks.txt" 2>&1 || true
		done
	fi
	wait "$pid"
}

# Stop the daemons; a sanitizer report in any daemon log fails the test.
teardown() {
	local rc=$?
	"$QKDN" net down --run-dir "$RUN" >/dev/null 2>&1 || true
	if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' \
		"$RUN"/*.log 2>/dev/null; then
		echo "FAIL: sanitizer report in a daemon log:" >&2
		grep -hE -A20 'Sanitizer|runtime error:' "$RUN"/*.log >&2 || true
		rc=1
	fi
	rm -rf "$TMP"
	exit $rc
}
trap teardown EXIT

# free_port: a loopback TCP port below the kernel's ephemeral range that
# no socket uses now, read from /proc (no python on a bare Debian), and
# that no earlier call of this test handed out (they run in subshells:
# the ports given are kept in a file; two nodes once got the same port
# before either listened). A lost race with another program shows as a
# daemon that exits before listening.
free_port() {
	local p tables=(/proc/net/tcp) given="$TMP/free_ports"
	[ ! -e /proc/net/tcp6 ] || tables+=(/proc/net/tcp6)
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 12000))
		! grep -qx "$p" "$given" 2>/dev/null || continue
		awk -v p="$(printf ':%04X' "$p")" \
			'index($2, p) == length($2) - 4 { f = 1 } END { exit f }' \
			"${tables[@]}" && { echo "$p" >>"$given"; echo "$p"; return; }
	done
	fail "no free port"
}

# write_net RATE [EXTRA_NODE_LINES] [KEY_TTL] [EXTRA_LINK_LINES] [EXTRA_SAES]:
# the two-node test network (SAEs alice on A, bob and mallory on B).
# EXTRA_NODE_LINES go into both node sections, EXTRA_LINK_LINES into the
# link A_B; EXTRA_SAES adds SAEs, one per line as "NAME NODE [UID]".
write_net() {
	local rate=${1:-8000000} ttl=${3:-600} saes=alice,bob,mallory
	local name node uid extra_saes=""
	while read -r name node uid; do
		[ -n "$name" ] || continue
		saes="$saes,$name"
		extra_saes+=$'\n'"[$name]"$'\n'"node = $node"$'\n'
		[ -z "$uid" ] || extra_saes+="uid = $uid"$'\n'
	done <<<"${5:-}"
	cat >"$CFG" <<CNF
[qkdn]
nodes = A, B
links = A_B
saes = $saes
run_dir = $RUN

[A]
kx = tcp://127.0.0.1:$(free_port)
key_ttl = $ttl
${2:-}

[B]
kx = tcp://127.0.0.1:$(free_port)
key_ttl = $ttl
${2:-}

[A_B]
nodes = A, B
rate = $rate
${4:-}

[alice]
node = A

[bob]
node = B

[mallory]
node = B
$extra_saes
CNF
}

# line_net MODE N SAE:NODE...: the network file of a line N1 - N2 - ... - Nn
# (links L12, L23, ... at 4 Mbit/s, Kx on loopback tcp) with controller
# MODE (distributed or centralized) and the SAEs given
line_net() {
	local mode=$1 n=$2 i s
	shift 2
	{
		printf '[qkdn]\nnodes = %s\nlinks = ' "$(seq -s ', ' -f 'N%g' 1 "$n")"
		for ((i = 1; i < n; i++)); do
			printf '%sL%d%d' "$([ $i = 1 ] || echo ', ')" $i $((i + 1))
		done
		printf '\nsaes = '
		for s in "$@"; do printf '%s%s' "$([ "$s" = "$1" ] || echo ', ')" "${s%%:*}"; done
		printf '\ncontroller = %s\nrun_dir = %s\n' "$mode" "$RUN"
		for ((i = 1; i <= n; i++)); do
			printf '\n[N%d]\nkx = tcp://127.0.0.1:%d\n' $i "$(free_port)"
		done
		for ((i = 1; i < n; i++)); do
			printf '\n[L%d%d]\nnodes = N%d, N%d\nrate = 4000000\n' \
				$i $((i + 1)) $i $((i + 1))
		done
		for s in "$@"; do printf '\n[%s]\nnode = %s\n' "${s%%:*}" "${s#*:}"; done
	} >"$CFG"
}

net_up() {
	launching "$QKDN" net up "$CFG" --run-dir "$RUN" >"$TMP/up.out" 2>&1 ||
		{ cat "$TMP/up.out" >&2; fail "qkdn net up"; }
}

# restart_km [--kill] NODE [FILE]: stop the KM of NODE (SIGTERM; SIGKILL
# with --kill, a crash) and start it again from FILE (default $CFG), with
# this shell's environment, through `qkdn net restart`, which returns once
# the new KM answers
restart_km() {
	local kill=()
	[ "$1" != --kill ] || { kill=(--kill); shift; }
	launching "$QKDN" net restart "$1" --config "${2:-$CFG}" \
		--run-dir "$RUN" "${kill[@]}" >"$TMP/restart.out" 2>&1 ||
		fail "km $1 did not come back: $(cat "$TMP/restart.out")"
}

AK_A() { echo "ipc://$RUN/A.ak"; }
AK_B() { echo "ipc://$RUN/B.ak"; }

# wait_for SECONDS CMD...: run CMD until it succeeds or the deadline passes
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# out_bytes NODE: key material left for keys NODE starts on link A_B
out_bytes() {
	"$QKDN" status --km "ipc://$RUN/$1.ak" --json | jq '.links[0].out'
}

has_out_bytes() { [ "$(out_bytes "$1")" -ge "$2" ]; }

# status_field NODE JQ: one field of NODE's status (JSON), e.g. .pending
status_field() {
	"$QKDN" status --km "ipc://$RUN/$1.ak" --json | jq -e "$2"
}

# expect_status NODE SUPPLIED PENDING [AK_ERRORS]: NODE's status counts
# exactly these keys supplied and pending and, if given, these Ak refusals
expect_status() {
	local s
	s=$("$QKDN" status --km "ipc://$RUN/$1.ak" --json) ||
		fail "no status from KM $1"
	[ "$(jq .supplied <<<"$s")" = "$2" ] ||
		fail "KM $1 supplied: want $2, status $s"
	[ "$(jq .pending <<<"$s")" = "$3" ] ||
		fail "KM $1 pending: want $3, status $s"
	[ -z "${4:-}" ] || [ "$(jq .ak_errors <<<"$s")" = "$4" ] ||
		fail "KM $1 Ak errors: want $4, status $s"
}

# status NODE: NODE's KM status as JSON
status() { "$QKDN" status --km "ipc://$RUN/$1.ak" --json; }

# pause_link: stop the emulator's key delivery on A_B and wait until the
# blocks already sent have landed (both ends hold the same number), so
# pool byte counts stay put
pause_link() {
	"$QKDN" link pause A_B --config "$CFG" --run-dir "$RUN" >/dev/null ||
		fail "could not pause the link"
	wait_for 10 same_blocks || fail "the KMs hold different blocks"
}
same_blocks() {
	[ "$(status B | jq '.links[0].blocks')" = \
		"$(status A | jq '.links[0].blocks')" ]
}

# kx_url NODE: NODE's Kx address in the network file
kx_url() {
	awk -v n="[$1]" '$0 == n { s = 1; next } /^\[/ { s = 0 }
		s && /^kx = / { print $3; exit }' "$CFG"
}
