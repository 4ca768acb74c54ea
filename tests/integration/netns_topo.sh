# A topology of hosts for the multi-node tests: one network namespace per
# node, one veth pair per link, so that each node is its own host and only
# direct neighbours reach each other. Source it after lib.sh (or
# tls_lib.sh), then:
#
#   topo_up "N1 N2 N3" "N1-N2 N2-N3"
#                     make one namespace per node and one veth pair per
#                     link (fails the test, with the reason, if namespaces
#                     are unavailable). Node i of the list (from 1) owns
#                     10.79.0.<i>/32 on its loopback; each end of a link
#                     gets a /32 route to the neighbour's address through
#                     its veth, and nothing else: a non-neighbour is
#                     unreachable (no route), so traffic between nodes
#                     that are not adjacent must be relayed by them.
#   node_ip NODE      its address (10.79.0.<i>)
#   node_ns NODE      its namespace's name
#   in_node NODE CMD...
#                     run CMD in NODE's namespace (ip execs it: run in the
#                     background, $! is CMD itself)
#   topo_spawn NODE LOG CMD...
#                     start CMD in the background in NODE's namespace (NODE
#                     "-": the root namespace), stdout and stderr to LOG;
#                     its pid in TOPO_PID. Stopped at exit (before the
#                     namespaces go), also in the root namespace.
#   topo_reap PID...  stop such processes now (SIGTERM, SIGKILL after 15 s)
#   topo_cut A B      cut the link between A and B: both veth ends down
#                     (which also drops their routes); new connections
#                     fail at once ("Network is unreachable"), packets of
#                     open ones are lost
#   topo_mend A B     restore it: both ends up, carrier awaited, routes back
#   topo_listening NODE PORT
#                     a TCP listener on PORT in NODE's namespace (no probe)
#   topo_reach A B PORT
#                     a TCP connection from A's namespace to B's address on
#                     PORT opens within 2 s
#
# Only the network is split: files, ipc:// sockets (paths in $RUN), pids
# and signals are shared, so `qkdn status --km ipc://...`, `qkdn route
# --config`, the emulator in the root namespace (Kq-1 on ipc://) and lib.sh's
# teardown (`qkdn net down`) reach daemons started in a namespace. Each
# namespace's loopback is its own: lib.sh's free_port (which reads the root
# namespace) says nothing about them; any port is free in a new namespace.
#
# Missing namespaces fail the test rather than skip it: CI runs as root.
#
# Teardown: at exit the processes of topo_spawn get SIGTERM (SIGKILL after
# 15 s), then every process still inside a namespace of this run (names are
# unique to it) the same, then the namespaces are deleted, which destroys
# their veth pairs; then the EXIT trap that was set before this file was
# sourced (lib.sh's teardown or tls_lib.sh's tls_teardown) runs with the
# test's exit status. A namespace that cannot be deleted fails the test. A
# test that sets its own EXIT trap after sourcing this file must call
# topo_teardown from it.

declare -F fail >/dev/null || {
	echo "netns_topo.sh: source lib.sh (or tls_lib.sh) first" >&2
	exit 1
}

# Names unique per run and short enough for IFNAMSIZ (15): the tag is 8
# characters (qt + 4 hex of the pid + 2 random), a veth end adds l<k>a/b.
TOPO_TAG=$(printf 'qt%04x%02x' $(($$ % 65536)) $((RANDOM % 256)))
TOPO_NODES=()
TOPO_LINKS=()          # "A-B" as given
declare -A TOPO_IDX=() # node -> its index (1..)
declare -A TOPO_LINK=() # "A B" and "B A" -> link index k (1..)
TOPO_MADE=0
TOPO_BG=()
TOPO_PID=
declare -A TOPO_WHAT=() # pid -> command line, for topo_reaped
TOPO_CRASHED=""
TOPO_WHY=""

topo_available() {
	TOPO_WHY=""
	if [ "$(id -u)" -ne 0 ]; then
		TOPO_WHY="not root (uid $(id -u)); network namespaces need root"
	elif ! command -v ip >/dev/null; then
		TOPO_WHY="no 'ip' command (apt-get install iproute2)"
	else
		local probe="${TOPO_TAG}p" err
		if ! err=$(ip netns add "$probe" 2>&1); then
			TOPO_WHY="'ip netns add' failed: $err"
		elif ! err=$(ip netns exec "$probe" true 2>&1); then
			TOPO_WHY="'ip netns exec' failed: $err"
		fi
		ip netns del "$probe" 2>/dev/null || true
	fi
	[ -z "$TOPO_WHY" ]
}

node_ns() {
	[ -n "${TOPO_IDX[${1:-}]:-}" ] || fail "no node '${1:-}' in the topology"
	echo "${TOPO_TAG}-$1"
}
node_ip() {
	[ -n "${TOPO_IDX[${1:-}]:-}" ] || fail "no node '${1:-}' in the topology"
	echo "10.79.0.${TOPO_IDX[$1]}"
}
# topo_veth A B: A's end of the link A-B
topo_veth() {
	local k=${TOPO_LINK["$1 $2"]:-}
	[ -n "$k" ] || fail "no link between $1 and $2 in the topology"
	local first=${TOPO_LINKS[$((k - 1))]%%-*}
	if [ "$first" = "$1" ]; then
		echo "${TOPO_TAG}l${k}a"
	else
		echo "${TOPO_TAG}l${k}b"
	fi
}

in_node() {
	local ns
	ns=$(node_ns "${1:-}")
	shift
	ip netns exec "$ns" "$@"
}

topo_spawn() {
	local node=$1 log=$2
	shift 2
	if [ "$node" = - ]; then
		"$@" >"$log" 2>&1 </dev/null &
	else
		local ns
		ns=$(node_ns "$node")
		ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	fi
	TOPO_PID=$!
	TOPO_BG+=("$TOPO_PID")
	TOPO_WHAT[$TOPO_PID]="$* (log $log)"
}

topo_up() {
	local nodes links n i=0 k=0 a b
	read -r -a nodes <<<"$1"
	read -r -a links <<<"$2"
	[ ${#nodes[@]} -ge 1 ] && [ ${#nodes[@]} -le 254 ] ||
		fail "topo_up: 1 to 254 nodes, not '${1}'"
	topo_available ||
		fail "network namespaces unavailable: $TOPO_WHY (this test needs one host per node; run it as root, as CI does)"
	TOPO_MADE=1 # from here on, teardown cleans up whatever exists
	for n in "${nodes[@]}"; do
		[ -z "${TOPO_IDX[$n]:-}" ] || fail "topo_up: node $n given twice"
		i=$((i + 1))
		TOPO_IDX[$n]=$i
		TOPO_NODES+=("$n")
		ip netns add "${TOPO_TAG}-$n" || fail "ip netns add ${TOPO_TAG}-$n"
		ip -n "${TOPO_TAG}-$n" link set lo up &&
			ip -n "${TOPO_TAG}-$n" addr add "10.79.0.$i/32" dev lo ||
			fail "cannot configure the namespace of $n"
	done
	for n in "${links[@]}"; do
		a=${n%%-*}
		b=${n#*-}
		[ -n "${TOPO_IDX[$a]:-}" ] && [ -n "${TOPO_IDX[$b]:-}" ] &&
			[ "$a" != "$b" ] || fail "topo_up: bad link '$n'"
		[ -z "${TOPO_LINK["$a $b"]:-}" ] || fail "topo_up: link $n given twice"
		k=$((k + 1))
		TOPO_LINKS+=("$n")
		TOPO_LINK["$a $b"]=$k
		TOPO_LINK["$b $a"]=$k
		# each end is created inside its namespace: nothing is ever
		# left in the root namespace, and deleting a namespace
		# destroys the pair
		ip link add "${TOPO_TAG}l${k}a" netns "${TOPO_TAG}-$a" type veth \
			peer name "${TOPO_TAG}l${k}b" netns "${TOPO_TAG}-$b" ||
			fail "cannot make the veth pair of $n"
	done
	for n in "${TOPO_LINKS[@]}"; do
		topo_mend "${n%%-*}" "${n#*-}"
	done
}

# topo_end_up A B: A's end of link A-B up, with its route to B
topo_end_up() {
	local v ns
	v=$(topo_veth "$1" "$2")
	ns=$(node_ns "$1")
	ip -n "$ns" link set "$v" up || fail "cannot set $v up in $ns"
	# set down, an interface loses its routes: (re)add it
	ip -n "$ns" route replace "$(node_ip "$2")/32" dev "$v" \
		src "$(node_ip "$1")" || fail "cannot route $1 -> $2 over $v"
}
topo_carrier() {
	ip -n "$(node_ns "$1")" -o link show dev "$(topo_veth "$1" "$2")" |
		grep -q LOWER_UP &&
		ip -n "$(node_ns "$2")" -o link show dev "$(topo_veth "$2" "$1")" |
		grep -q LOWER_UP
}

topo_mend() {
	topo_end_up "$1" "$2"
	topo_end_up "$2" "$1"
	# a veth has carrier only once both ends are up: wait for it so the
	# next connection does not race the link
	wait_for 5 topo_carrier "$1" "$2" || fail "link $1-$2 never came up"
}

topo_cut() {
	ip -n "$(node_ns "$1")" link set "$(topo_veth "$1" "$2")" down &&
		ip -n "$(node_ns "$2")" link set "$(topo_veth "$2" "$1")" down ||
		fail "cannot cut the link $1-$2"
}

topo_listening() {
	in_node "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .
}

topo_reach() {
	in_node "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$(node_ip "$2")/$3" \
		2>/dev/null
}

# topo_running PID: PID exists and is not a zombie (our own children stay
# zombies until reaped, and a zombie has left its namespace already)
topo_running() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) } # the command name in (...) may hold spaces
	[ "${s%% *}" != Z ]
}

# topo_stop PID...: SIGTERM, up to 15 s, then the threads of what is
# left (gdb) into the test's output and SIGKILL. (A distributed
# controller whose neighbours were cut away once never stopped: nng
# 1.5.2's nng_close of its tcp:// REP socket waited for a pipe that never
# went; every listener is our own front since, daemon/qkdn_front.h.)
topo_stop() {
	[ $# -gt 0 ] || return 0
	local pid deadline
	kill -TERM "$@" 2>/dev/null || true
	deadline=$(($(date +%s) + 15))
	for pid in "$@"; do
		while topo_running "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
			sleep 0.05
		done
	done
	for pid in "$@"; do
		topo_running "$pid" || continue
		# where it hangs goes into the test's output with the failure
		if command -v gdb >/dev/null; then
			echo "netns_topo.sh: threads of ${TOPO_WHAT[$pid]:-pid $pid}, still running 15 s after SIGTERM:" >&2
			timeout 20 gdb -batch -p "$pid" -ex 'thread apply all bt' 2>&1 |
				grep -E '^(Thread|#)' | head -n 200 >&2 || true
		fi
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# topo_reaped PID: reap a stopped process of topo_spawn; an exit status
# other than 0 or SIGTERM's (a daemon that crashed, or had to be killed)
# is recorded in TOPO_CRASHED and printed
topo_reaped() {
	local st=0 why
	wait "$1" 2>/dev/null || st=$?
	[ "$st" != 0 ] && [ "$st" != 143 ] && [ "$st" != 127 ] || return 0
	why="status $st"
	[ "$st" -le 128 ] || why="signal $(kill -l $((st - 128)) 2>/dev/null || echo $((st - 128)))"
	echo "netns_topo.sh: ${TOPO_WHAT[$1]:-pid $1} ended with $why when stopped" >&2
	TOPO_CRASHED+="${TOPO_CRASHED:+; }${TOPO_WHAT[$1]:-pid $1}: $why"
}

# topo_reap PID...: stop processes of topo_spawn now (as at exit), reap
# them and forget them; fails the test if one crashed (topo_reaped)
topo_reap() {
	local pid keep=() p
	topo_stop "$@"
	for pid in "$@"; do
		topo_reaped "$pid"
	done
	[ -z "$TOPO_CRASHED" ] || fail "a daemon crashed: $TOPO_CRASHED"
	for p in "${TOPO_BG[@]}"; do
		for pid in "$@"; do
			[ "$p" != "$pid" ] || continue 2
		done
		keep+=("$p")
	done
	TOPO_BG=("${keep[@]}")
}

# topo_down: stop what was spawned and what runs inside, delete the
# namespaces. Idempotent; 1 if something is left behind.
topo_down() {
	local n pid pids=() left=0
	topo_stop "${TOPO_BG[@]}"
	for pid in "${TOPO_BG[@]}"; do
		topo_reaped "$pid"
	done
	TOPO_BG=()
	[ "$TOPO_MADE" = 1 ] || return 0
	for n in "${TOPO_NODES[@]}"; do
		[ -e "/run/netns/${TOPO_TAG}-$n" ] || continue
		# while a process is inside, `ip netns del` only drops the name
		# and the namespace (with its veths) lives on unseen
		# shellcheck disable=SC2207 # pids are plain numbers
		pids+=($(ip netns pids "${TOPO_TAG}-$n" 2>/dev/null))
	done
	topo_stop "${pids[@]}"
	for n in "${TOPO_NODES[@]}"; do
		[ -e "/run/netns/${TOPO_TAG}-$n" ] || continue
		ip netns del "${TOPO_TAG}-$n" 2>/dev/null || {
			echo "netns_topo.sh: cannot delete namespace ${TOPO_TAG}-$n" >&2
			left=1
		}
	done
	TOPO_MADE=0
	return "$left"
}

# ---- a qkdn network on the topology ----
#
#   topo_net_file FILE MODE "SAE:NODE ..." [RATE]
#                     a network file of the topology's nodes and links
#                     (link A-B is section A_B, rate RATE bits/s, default
#                     8000000, or TOPO_RATE[A-B]; more lines of its
#                     section in TOPO_LINK_EXTRA[A-B]), controller = MODE
#                     (distributed | centralized), run_dir $RUN. Each node
#                     has Kx on tcp://<its address>:17101 (tls+tcp:// with
#                     the certificates of $TOPO_CERTS/<node>.pem|key and
#                     $TOPO_CERTS/ca.pem when TOPO_CERTS is set) and, for
#                     its controller, Cx on tcp://<its address>:17102 (to
#                     the controllers of its neighbours); Ak, Kq-1 and Ck
#                     are ipc sockets in $RUN.
#   topo_net_start FILE
#                     the emulator in the root namespace (Kq-1 is ipc),
#                     the controllers (distributed: one per node in its
#                     namespace; centralized: one in the root namespace,
#                     whose Ck every KM reaches as a file), then each KM
#                     in its node's namespace (`qkdn net restart`); waits
#                     until every controller sees every link up, every
#                     KM link holds at least TOPO_MIN_OUT bytes (default
#                     40000) of key for each direction, and logs go to $RUN
#   topo_net_stop     stop them all (KMs with `qkdn net down`)
#   topo_ctl NODE     the Ck address of NODE's controller (the central one
#                     in centralized mode)
#   topo_km NODE      the Ak address of NODE's KM
#   km_relay NODE     NODE's relay counters (JSON)
#   ctl_status NODE   its controller's status (JSON)
declare -A TOPO_RATE=()
declare -A TOPO_LINK_EXTRA=()
TOPO_CERTS=${TOPO_CERTS:-}
TOPO_MIN_OUT=${TOPO_MIN_OUT:-40000}
TOPO_MODE=
TOPO_NET_PIDS=()

topo_net_file() {
	local file=$1 mode=$2 saes=() s n l list="" llist="" slist="" scheme=tcp
	read -r -a saes <<<"$3"
	[ -z "$TOPO_CERTS" ] || scheme=tls+tcp
	TOPO_MODE=$mode
	for n in "${TOPO_NODES[@]}"; do list+="${list:+, }$n"; done
	for l in "${TOPO_LINKS[@]}"; do llist+="${llist:+, }${l/-/_}"; done
	for s in "${saes[@]}"; do slist+="${slist:+, }${s%%:*}"; done
	{
		echo "[qkdn]"
		echo "nodes = $list"
		echo "links = $llist"
		echo "saes = $slist"
		echo "run_dir = $RUN"
		echo "controller = $mode"
		[ -z "$TOPO_CERTS" ] || echo "ca = $TOPO_CERTS/ca.pem"
		for n in "${TOPO_NODES[@]}"; do
			echo
			echo "[$n]"
			echo "kx = $scheme://$(node_ip "$n"):17101"
			echo "cx = $scheme://$(node_ip "$n"):17102"
			if [ -n "$TOPO_CERTS" ]; then
				echo "cert = $TOPO_CERTS/$n.pem"
				echo "key = $TOPO_CERTS/$n.key"
			fi
		done
		for l in "${TOPO_LINKS[@]}"; do
			echo
			echo "[${l/-/_}]"
			echo "nodes = ${l%%-*}, ${l#*-}"
			echo "rate = ${TOPO_RATE[$l]:-${4:-8000000}}"
			[ -z "${TOPO_LINK_EXTRA[$l]:-}" ] ||
				echo "${TOPO_LINK_EXTRA[$l]}"
		done
		for s in "${saes[@]}"; do
			echo
			echo "[${s%%:*}]"
			echo "node = ${s#*:}"
		done
	} >"$file"
}

topo_ctl() {
	if [ "$TOPO_MODE" = centralized ]; then
		echo "ipc://$RUN/central.ck"
	else
		echo "ipc://$RUN/$1.ck"
	fi
}
topo_km() { echo "ipc://$RUN/$1.ak"; }
km_relay() { "$QKDN" status --km "$(topo_km "$1")" --json | jq -c .relay; }
ctl_status() { "$QKDN" status --ctl "$(topo_ctl "$1")" --json; }

# topo_links_up NODE: NODE's controller sees every link of the topology up
topo_links_up() {
	local up
	up=$(ctl_status "$1" |
		jq '[.links[] | select(.up) | .link] | unique | length') &&
		[ "$up" = ${#TOPO_LINKS[@]} ]
}
# topo_km_filled NODE: every link of NODE's KM holds TOPO_MIN_OUT bytes
# of key for each direction, and is up
topo_km_filled() {
	"$QKDN" status --km "$(topo_km "$1")" --json |
		jq -e --argjson m "$TOPO_MIN_OUT" \
			'[.links[] | select(.out < $m or .in < $m or (.up | not))]
			 | length == 0' >/dev/null
}
topo_ctl_answers() { "$QKDN" status --ctl "$1" --json >/dev/null 2>&1; }

topo_net_start() {
	local file=$1 n url out
	mkdir -p "$RUN"
	topo_spawn - "$RUN/qkdsim.log" "$BIN/qkdn-qkdsim" --config "$file" \
		--run-dir "$RUN"
	TOPO_NET_PIDS+=("$TOPO_PID")
	wait_for 10 test -S "$RUN/sim.ctl" || fail "the emulator did not start"
	if [ "$TOPO_MODE" = centralized ]; then
		topo_spawn - "$RUN/ctl-central.log" "$BIN/qkdn-controller" \
			--config "$file" --run-dir "$RUN"
		TOPO_NET_PIDS+=("$TOPO_PID")
		wait_for 10 topo_ctl_answers "$(topo_ctl central)" ||
			fail "the central controller does not answer"
	else
		for n in "${TOPO_NODES[@]}"; do
			topo_spawn "$n" "$RUN/ctl-$n.log" "$BIN/qkdn-controller" \
				--config "$file" --node "$n" --run-dir "$RUN"
			TOPO_NET_PIDS+=("$TOPO_PID")
		done
		for n in "${TOPO_NODES[@]}"; do
			wait_for 10 topo_ctl_answers "$(topo_ctl "$n")" ||
				fail "the controller of $n does not answer"
		done
	fi
	for n in "${TOPO_NODES[@]}"; do
		out=$(in_node "$n" "$QKDN" net restart "$n" --config "$file" \
			--run-dir "$RUN" 2>&1) ||
			fail "km $n did not start in its namespace: $out"
	done
	for n in "${TOPO_NODES[@]}"; do
		url=$n
		[ "$TOPO_MODE" != centralized ] || url=central
		wait_for 20 topo_links_up "$url" ||
			fail "controller of $n: links not all up: $(ctl_status "$url" 2>&1)"
	done
	for n in "${TOPO_NODES[@]}"; do
		wait_for 20 topo_km_filled "$n" ||
			fail "km $n: links not filled: $("$QKDN" status --km "$(topo_km "$n")" 2>&1)"
	done
}

topo_net_stop() {
	"$QKDN" net down --run-dir "$RUN" >/dev/null 2>&1 || true
	topo_reap "${TOPO_NET_PIDS[@]}"
	TOPO_NET_PIDS=()
}

# The EXIT trap in force now, as a command string: `trap -p` prints it
# shell-quoted ("trap -- 'teardown' EXIT"), so eval of the middle part
# gives it back exactly.
TOPO_PREV_TRAP=$(trap -p EXIT)
TOPO_PREV_TRAP=${TOPO_PREV_TRAP#"trap -- "}
TOPO_PREV_TRAP=${TOPO_PREV_TRAP%" EXIT"}
eval "TOPO_PREV_TRAP=${TOPO_PREV_TRAP:-''}"

topo_teardown() {
	local rc=$?
	set +e # a failing step here must not skip the teardown chained after
	if ! topo_down; then
		echo "FAIL: network namespaces left behind: ${TOPO_NODES[*]/#/$TOPO_TAG-}" >&2
		rc=1
	fi
	if [ -n "$TOPO_CRASHED" ] && [ "$rc" = 0 ]; then
		echo "FAIL: a daemon crashed at exit: $TOPO_CRASHED" >&2
		rc=1
	fi
	if [ -n "$TOPO_PREV_TRAP" ]; then
		(exit "$rc")
		eval "$TOPO_PREV_TRAP"
	fi
	exit "$rc"
}
trap topo_teardown EXIT
