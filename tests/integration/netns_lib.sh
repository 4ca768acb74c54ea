# Two hosts for the TLS-between-hosts tests: two network namespaces joined
# by a veth pair, 10.77.0.1/24 in namespace 1 and 10.77.0.2/24 in
# namespace 2, each with its own loopback up. Source it after lib.sh (or
# tls_lib.sh), then:
#
#   netns_up                 make both namespaces (fails the test, with the
#                            reason, if namespaces are unavailable)
#   in_ns N CMD...           run CMD in namespace N (1 or 2), foreground
#   "${IN_NS1[@]}" CMD &     the same as a plain command, for background
#                            processes: $! is then CMD itself (ip execs it),
#                            so bg_start/bg_stop of tls_lib.sh work on it
#   ${NS_IP[1]} ${NS_IP[2]}  the two addresses
#   ns_listening N PORT      something listens on PORT in namespace N
#   ns_wait_listen N PID PORT NAME
#                            until PID listens on PORT there (10 s); fails
#                            at once if PID exits first (output $TMP/NAME.out)
#   ns_link down|up          cut or restore the wire between the two
#   netns_available          0 if root and `ip netns` work; else 1 with the
#                            reason in $NETNS_WHY (no side effects)
#
# Only the network is split: files, ipc:// sockets (paths in $RUN), pids
# and signals are shared, so `qkdn status --km ipc://...` and lib.sh's
# teardown (`qkdn net down`) reach daemons started in a namespace. Each
# namespace's loopback is its own: a tcp://127.0.0.1 listener in one is
# unreachable from the other, and lib.sh's free_port (which reads the
# root namespace) says nothing about them; any port is free in a new
# namespace.
#
# Missing namespaces fail the test rather than skip it: CI runs as root,
# so a test that quietly skipped there would hide a broken environment.
#
# Teardown: at exit every process still inside either namespace (only this
# test's: the names are unique to the run) gets SIGTERM, SIGKILL after 5 s,
# then both namespaces are deleted, which destroys the veth pair; then the
# EXIT trap that was set before this file was sourced (lib.sh's teardown or
# tls_lib.sh's tls_teardown) runs with the test's exit status. A namespace
# that cannot be deleted fails the test. A test that sets its own EXIT trap
# after sourcing this file must call netns_teardown from it.

declare -F fail >/dev/null || {
	echo "netns_lib.sh: source lib.sh (or tls_lib.sh) first" >&2
	exit 1
}

# Names unique per run (pid, plus a random part for pid reuse across
# containers) and within IFNAMSIZ (15): e.g. qk5d3a1f0n1, qk5d3a1f0v1.
NETNS_TAG=$(printf 'qk%x%03x' $$ $((RANDOM % 4096)))
NS_NAME=([1]="${NETNS_TAG}n1" [2]="${NETNS_TAG}n2")
NS_VETH=([1]="${NETNS_TAG}v1" [2]="${NETNS_TAG}v2")
NS_IP=([1]=10.77.0.1 [2]=10.77.0.2)
# shellcheck disable=SC2034 # for the tests that source this file
IN_NS1=(ip netns exec "${NS_NAME[1]}")
# shellcheck disable=SC2034
IN_NS2=(ip netns exec "${NS_NAME[2]}")
NETNS_MADE=0
NETNS_WHY=""

netns_available() {
	NETNS_WHY=""
	if [ "$(id -u)" -ne 0 ]; then
		NETNS_WHY="not root (uid $(id -u)); network namespaces need root"
	elif ! command -v ip >/dev/null; then
		NETNS_WHY="no 'ip' command (apt-get install iproute2)"
	else
		local probe="${NETNS_TAG}p" err
		if ! err=$(ip netns add "$probe" 2>&1); then
			NETNS_WHY="'ip netns add' failed: $err"
		elif ! err=$(ip netns exec "$probe" true 2>&1); then
			NETNS_WHY="'ip netns exec' failed: $err"
		fi
		ip netns del "$probe" 2>/dev/null || true
	fi
	[ -z "$NETNS_WHY" ]
}

netns_up() {
	netns_available ||
		fail "network namespaces unavailable: $NETNS_WHY (this test needs two hosts; run it as root, as CI does)"
	local n
	NETNS_MADE=1 # from here on, teardown cleans up whatever exists
	for n in 1 2; do
		ip netns add "${NS_NAME[$n]}" || fail "ip netns add ${NS_NAME[$n]}"
	done
	# each end is created inside its namespace: nothing is ever left in
	# the root namespace, and deleting a namespace destroys the pair
	ip link add "${NS_VETH[1]}" netns "${NS_NAME[1]}" type veth \
		peer name "${NS_VETH[2]}" netns "${NS_NAME[2]}" ||
		fail "cannot make the veth pair"
	for n in 1 2; do
		if ! { ip -n "${NS_NAME[$n]}" link set lo up &&
			ip -n "${NS_NAME[$n]}" addr add "${NS_IP[$n]}/24" \
				dev "${NS_VETH[$n]}" &&
			ip -n "${NS_NAME[$n]}" link set "${NS_VETH[$n]}" up; }; then
			fail "cannot configure ${NS_NAME[$n]}"
		fi
	done
	# a veth has carrier only once both ends are up: wait for it so the
	# first connection of a test does not race the link
	wait_for 5 netns_carrier ||
		fail "veth pair ${NS_VETH[1]}/${NS_VETH[2]} never came up"
}
netns_carrier() {
	local n
	for n in 1 2; do
		ip -n "${NS_NAME[$n]}" -o link show dev "${NS_VETH[$n]}" |
			grep -q 'LOWER_UP' || return 1
	done
}

# in_ns N CMD...
in_ns() {
	case ${1:-} in
	1 | 2) ;;
	*) fail "in_ns: namespace '${1:-}' is not 1 or 2" ;;
	esac
	local n=$1
	shift
	ip netns exec "${NS_NAME[$n]}" "$@"
}

# ns_listening N PORT: a TCP listener on PORT (any address) in namespace N;
# no probe connection is made.
ns_listening() {
	in_ns "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .
}

ns_wait_listen() {
	local deadline=$(($(date +%s) + 10))
	until ns_listening "$1" "$3"; do
		kill -0 "$2" 2>/dev/null ||
			fail "$4 exited before listening: $(tail -n 20 "$TMP/$4.out" 2>/dev/null)"
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "$4 did not listen on port $3 in namespace $1 within 10 s"
		sleep 0.05
	done
}

# ns_link down|up: namespace 1's end of the wire; both lose carrier
ns_link() {
	ip -n "${NS_NAME[1]}" link set "${NS_VETH[1]}" "$1" ||
		fail "ns_link $1"
}

# ns_running PID: PID exists and is not a zombie (our own children stay
# zombies until reaped, and a zombie has left its namespace already)
ns_running() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) } # the command name in (...) may hold spaces
	[ "${s%% *}" != Z ]
}

# netns_down: stop what runs inside, delete both namespaces. Idempotent;
# 1 if something is left behind.
netns_down() {
	[ "$NETNS_MADE" = 1 ] || return 0
	local n pid pids=() left=0 deadline
	for n in 1 2; do
		[ -e "/run/netns/${NS_NAME[$n]}" ] || continue
		# while a process is inside, `ip netns del` only drops the name
		# and the namespace (with its veth) lives on unseen
		# shellcheck disable=SC2207 # pids are plain numbers
		pids+=($(ip netns pids "${NS_NAME[$n]}" 2>/dev/null))
	done
	if [ ${#pids[@]} -gt 0 ]; then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		deadline=$(($(date +%s) + 5))
		for pid in "${pids[@]}"; do
			while ns_running "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
				sleep 0.05
			done
		done
		for pid in "${pids[@]}"; do
			! ns_running "$pid" || kill -KILL "$pid" 2>/dev/null || true
		done
	fi
	for n in 1 2; do
		[ -e "/run/netns/${NS_NAME[$n]}" ] || continue
		ip netns del "${NS_NAME[$n]}" 2>/dev/null || {
			echo "netns_lib.sh: cannot delete namespace ${NS_NAME[$n]}" >&2
			left=1
		}
	done
	# only if creation went wrong halfway: an end in the root namespace
	for n in 1 2; do
		if ip link show dev "${NS_VETH[$n]}" >/dev/null 2>&1; then
			ip link del "${NS_VETH[$n]}" 2>/dev/null || left=1
		fi
	done
	NETNS_MADE=0
	return "$left"
}

# The EXIT trap in force now, as a command string: `trap -p` prints it
# shell-quoted ("trap -- 'teardown' EXIT"), so eval of the middle part
# gives it back exactly.
NETNS_PREV_TRAP=$(trap -p EXIT)
NETNS_PREV_TRAP=${NETNS_PREV_TRAP#"trap -- "}
NETNS_PREV_TRAP=${NETNS_PREV_TRAP%" EXIT"}
eval "NETNS_PREV_TRAP=${NETNS_PREV_TRAP:-''}"

netns_teardown() {
	local rc=$?
	set +e # a failing step here must not skip the teardown chained after
	if ! netns_down; then
		echo "FAIL: network namespaces left behind: ${NS_NAME[*]}" >&2
		rc=1
	fi
	if [ -n "$NETNS_PREV_TRAP" ]; then
		(exit "$rc")
		eval "$NETNS_PREV_TRAP"
	fi
	exit "$rc"
}
trap netns_teardown EXIT
