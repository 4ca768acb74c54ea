# Connection caps, idle timeouts and the tls+tcp:// listener of the REP
# server skeleton (daemon/server.c, daemon/front.c):
#  1. a real KM: connections from one address to its tcp:// Kx beyond the
#     per-host cap (8: KX_CONNS_PER_HOST) are closed at once and logged, while the
#     peer KM's own connection still carries key syncs;
#  2. srv_echo (a bare qkdn_server) on tcp://: the listener cap; an idle
#     connection is closed after idle_ms, one with a request in flight is
#     not, one in use stays open; a tcp:// request shaped like the TLS
#     front's internal identity prefix gets no identity;
#  3. srv_echo on ipc://: the listener cap, refusal naming the peer uid;
#  4. srv_echo on tls+tcp://: a client certificate is required and its CN
#     reaches the handler (qkdn_server_peer_name); no certificate, an
#     expired one, one of another CA, a plaintext SP client, a silent
#     client (5 s handshake deadline), a non-REQ SP peer and an oversized
#     frame are refused, each with its log line; per-host cap; idle close;
#  5. every srv_echo stops cleanly (exit 0, no sanitizer report) with
#     connections open.
source "$(dirname "$0")/lib.sh"
PROBE="$BIN/listener_probe"
ECHO="$BIN/srv_echo"
declare -A ECHO_PID

echo_teardown() {
	local rc=$? name
	set +e
	for name in "${!ECHO_PID[@]}"; do
		kill "${ECHO_PID[$name]}" 2>/dev/null
		wait "${ECHO_PID[$name]}" 2>/dev/null
	done
	if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' \
		"$TMP"/echo-*.log 2>/dev/null; then
		echo "FAIL: sanitizer report in srv_echo:" >&2
		grep -hE -A20 'Sanitizer|runtime error:' "$TMP"/echo-*.log >&2
		rc=1
	fi
	(exit "$rc")
	teardown
}
trap echo_teardown EXIT

# start_echo NAME URL [ARGS...]: srv_echo in the background, logging to
# $TMP/echo-NAME.log, once it listens
start_echo() {
	local name=$1
	shift
	"$ECHO" "$@" >"$TMP/echo-$name.log" 2>&1 &
	ECHO_PID[$name]=$!
	wait_for 10 grep -q "listening on" "$TMP/echo-$name.log" ||
		fail "srv_echo $name did not start: $(cat "$TMP/echo-$name.log")"
}

# stop_echo NAME: SIGTERM; it must exit 0 within 5 s (clean stop)
stop_echo() {
	local pid=${ECHO_PID[$1]} rc=0
	kill "$pid"
	wait_for 5 bash -c "! kill -0 $pid" ||
		fail "srv_echo $1 did not stop within 5 s"
	wait "$pid" || rc=$?
	unset "ECHO_PID[$1]"
	[ "$rc" = 0 ] || fail "srv_echo $1 exited $rc: $(tail "$TMP/echo-$1.log")"
}

# expect_log NAME PATTERN: srv_echo NAME logged a line matching PATTERN
expect_log() {
	wait_for 3 grep -qE "$2" "$TMP/echo-$1.log" ||
		fail "srv_echo $1 did not log /$2/: $(cat "$TMP/echo-$1.log")"
}

# field LINE KEY: the value of KEY=VALUE in LINE
field() { sed -nE "s/.*(^| )$2=([0-9]+).*/\2/p" <<<"$1"; }

# expect_closed_after LINE LO HI: the probe saw a close after LO..HI ms
expect_closed_after() {
	local ms
	ms=$(field "$1" closed_after_ms)
	[ -n "$ms" ] && [ "$ms" -ge "$2" ] && [ "$ms" -le "$3" ] ||
		fail "expected a close after $2..$3 ms, got: $1"
}

# expect_cap LINE ANSWERED REFUSED: and the refusals were immediate
expect_cap() {
	[ "$(field "$1" answered)" = "$2" ] && [ "$(field "$1" refused)" = "$3" ] ||
		fail "expected answered=$2 refused=$3, got: $1"
	[ "$(field "$1" slowest_refusal_ms)" -lt 1000 ] ||
		fail "over-cap connections were not closed at once: $1"
}

# --- 1. the real KM: per-host cap on its tcp:// Kx
write_net 8000000
net_up
wait_for 10 has_out_bytes B 4096 || fail "pool of B never filled"
KX_A=$(kx_url A)
"$PROBE" cap "$KX_A" 40 --hold 4000 >"$TMP/kmcap.out" &
probe=$!
sleep 1.5
# bob's key request travels B -> A over B's pooled Kx connection, which
# was there before the flood
"$QKDN" key get --km "$(AK_B)" --sae bob --to alice >/dev/null ||
	fail "an honest key request failed while the Kx listener was flooded"
wait "$probe" || fail "probe failed: $(cat "$TMP/kmcap.out")"
line=$(cat "$TMP/kmcap.out")
answered=$(field "$line" answered)
# 8 from one address, less the one or two of KM B (same address)
[ "$answered" -ge 6 ] && [ "$answered" -le 7 ] &&
	[ "$(field "$line" refused)" = $((40 - answered)) ] ||
	fail "KM A's Kx: expected 6..7 of 40 answered, got: $line"
[ "$(field "$line" slowest_refusal_ms)" -lt 1000 ] ||
	fail "KM A's Kx closed over-cap connections late: $line"
grep -qE "refused a Kx connection from 127\.0\.0\.1:[0-9]+: over the connection cap \(8 from one address\)" \
	"$RUN/km-A.log" || fail "KM A did not log the refusal"
echo "ok: KM Kx per-host cap ($line)"

# --- 2. srv_echo on tcp://
URL="tcp://127.0.0.1:$(free_port)"
start_echo tcp "$URL" --max-conns 4 --per-host 100 --idle-ms 1000
[ "$("$PROBE" status "$URL")" = "-" ] || fail "a tcp:// request had a peer name"
expect_cap "$("$PROBE" cap "$URL" 6)" 4 2
expect_log tcp "refused a Echo connection from 127\.0\.0\.1:[0-9]+: over the connection cap \(4\)"
expect_closed_after "$("$PROBE" idle "$URL")" 900 2600
# in flight for 2.5 s > idle_ms: answered, then closed once idle
expect_closed_after "$("$PROBE" idle "$URL" --delay 2500)" 900 2600
line=$("$PROBE" busy "$URL" 3000 300) || fail "a busy connection was closed: $line"
spoof=$("$PROBE" spoof "$URL" alice)
case $spoof in
"error: "*) ;;
*) fail "a tcp:// request with the identity prefix got: $spoof" ;;
esac
echo "ok: tcp:// cap, idle close, in-flight kept, busy kept, no spoofing"

# --- 3. srv_echo on ipc://
IPC="ipc://$TMP/echo.ipc"
start_echo ipc "$IPC" --max-conns 3 --idle-ms 1000
expect_cap "$("$PROBE" cap "$IPC" 5)" 3 2
expect_log ipc "refused a Echo connection from ipc peer uid $(id -u) pid [0-9]+: over the connection cap \(3\)"
expect_closed_after "$("$PROBE" idle "$IPC")" 900 2600
echo "ok: ipc:// cap and idle close"

# --- 4. srv_echo on tls+tcp://
C="$TMP/certs"
mkdir -p "$C"
cat >"$C/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = qkdn test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
printf 'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth, clientAuth\n' >"$C/node.ext"
printf 'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = clientAuth\n' >"$C/sae.ext"
ossl() { openssl "$@" 2>>"$C/openssl.err" || fail "openssl $1: $(cat "$C/openssl.err")"; }
# make_ca NAME
make_ca() {
	ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C/$1.key"
	ossl req -x509 -new -config "$C/ca.cnf" -extensions v3_ca \
		-key "$C/$1.key" -days 30 -out "$C/$1.pem"
}
# make_cert CA CN EXT: $C/CN.pem and $C/CN.key (CN@CA for a second CA)
make_cert() {
	local out=$2
	[ "$1" = ca ] || out="$2@$1"
	ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C/$out.key"
	ossl req -new -key "$C/$out.key" -subj "/CN=$2" -out "$C/$out.csr"
	ossl x509 -req -in "$C/$out.csr" -CA "$C/$1.pem" -CAkey "$C/$1.key" \
		-CAcreateserial -days 30 -extfile "$C/$3.ext" -out "$C/$out.pem"
}
make_ca ca
make_ca evil
make_cert ca A node
make_cert ca B node
make_cert ca alice sae
make_cert evil alice sae
"$PROBE" mkexpired "$C/ca.pem" "$C/ca.key" "$C/old.pem" "$C/old.key" alice ||
	fail "no expired certificate"
as() { echo --ca "$C/ca.pem" --cert "$C/$1.pem" --key "$C/$1.key"; }

PORT=$(free_port)
TLS="tls+tcp://127.0.0.1:$PORT"
# shellcheck disable=SC2046
start_echo tls "$TLS" $(as A) --max-conns 8 --per-host 3 --idle-ms 1000
# shellcheck disable=SC2046
[ "$("$PROBE" status "$TLS" $(as alice))" = alice ] ||
	fail "the SAE certificate's CN did not reach the handler"
# shellcheck disable=SC2046
[ "$("$PROBE" status "$TLS" $(as B))" = B ] ||
	fail "the node certificate's CN did not reach the handler"

# refused_tls WHAT PATTERN PROBE-ARGS...: the probe gets no answer and the
# server logs the refusal with the peer's address and PATTERN
refused_tls() {
	local what=$1 pat=$2 out
	shift 2
	out=$("$PROBE" "$@") || true
	case $out in
	refused:* | closed) ;;
	*) fail "$what: not refused: $out" ;;
	esac
	expect_log tls "refused a Echo connection from 127\.0\.0\.1:[0-9]+: $pat"
	echo "ok: $what refused ($pat)"
}
refused_tls "no certificate" "no certificate" status "$TLS" --ca "$C/ca.pem"
refused_tls "an expired certificate" "certificate has expired" \
	status "$TLS" --ca "$C/ca.pem" --cert "$C/old.pem" --key "$C/old.key"
refused_tls "another CA's certificate" "unable to get local issuer certificate" \
	status "$TLS" --ca "$C/ca.pem" --cert "$C/alice@evil.pem" \
	--key "$C/alice@evil.key"
refused_tls "a plaintext SP client" "not a TLS client \(plaintext\?\)" \
	status "tcp://127.0.0.1:$PORT"
# shellcheck disable=SC2046
refused_tls "a PAIR peer" "not an SP REQ peer" badproto "$TLS" $(as alice)
# shellcheck disable=SC2046
refused_tls "an oversized frame" "a frame of 100000 bytes" \
	oversize "$TLS" 100000 $(as alice)
expect_closed_after "$("$PROBE" silent "$TLS")" 4500 7000
expect_log tls "refused a Echo connection from 127\.0\.0\.1:[0-9]+: handshake timed out"
echo "ok: a silent client was dropped at the 5 s handshake deadline"
# shellcheck disable=SC2046
expect_cap "$("$PROBE" cap "$TLS" 5 $(as alice))" 3 2
expect_log tls "over the connection cap \(3 from one address\)"
# shellcheck disable=SC2046
expect_closed_after "$("$PROBE" idle "$TLS" $(as alice))" 900 2600
# shellcheck disable=SC2046
expect_closed_after "$("$PROBE" idle "$TLS" $(as alice) --delay 2500)" 900 2600
# shellcheck disable=SC2046
line=$("$PROBE" busy "$TLS" 3000 300 $(as alice)) ||
	fail "a busy TLS connection was closed: $line"
echo "ok: tls+tcp:// per-host cap, idle close, in-flight kept, busy kept"

# --- 5. clean stops with connections open (a TLS one mid-use, a held nng
# one); sanitizer builds report leaks at exit
# shellcheck disable=SC2046
"$PROBE" busy "$TLS" 5000 100 $(as alice) >/dev/null &
busy=$!
"$PROBE" cap "$URL" 2 --hold 5000 >/dev/null &
held=$!
sleep 1
stop_echo tls
stop_echo tcp
stop_echo ipc
wait "$busy" && fail "the TLS client was not cut off by the stop"
wait "$held" || true
echo "ok: srv_echo stopped cleanly with connections open"
