# Shared set-up for the TLS and EVP tests (test_tls_*.sh, test_evp_*.sh),
# on top of lib.sh: the two-node network, one OpenSSL configuration per
# application rendered from examples/openssl-qkdn.cnf.in (the provider is
# loaded only through OPENSSL_CONF), a test CA and server certificate,
# background servers that are always stopped at exit, and parsers for what
# the stock programs print. Source it from a test instead of lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=${QKDN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MODULE="$QKDN_BIN/lib/qkdn.so"
TEMPLATE="$SRC/examples/openssl-qkdn.cnf.in"
# the tests say which configuration each program reads
unset OPENSSL_CONF OPENSSL_MODULES QKDN_KM QKDN_SAE QKDN_TIMEOUT_MS QKDN_BATCH

BG_PIDS=()
# Stop every background server, then lib.sh's teardown (daemons, $TMP).
# A sanitizer report in what a program printed or logged (*.out, *.log
# outside the run directory, which lib.sh checks) fails the test.
tls_teardown() {
	local rc=$?
	local pid
	set +e # a failing step here must not skip lib.sh's teardown
	for pid in "${BG_PIDS[@]}"; do
		bg_stop "$pid"
	done
	local pat='AddressSanitizer|LeakSanitizer|runtime error:'
	local logs=(-r --include='*.out' --include='*.log' --exclude-dir=run)
	if grep -lE "${logs[@]}" "$pat" "$TMP" 2>/dev/null; then
		echo "FAIL: sanitizer report in a program's output:" >&2
		grep -hE -A20 "${logs[@]}" "$pat" "$TMP" >&2 || true
		rc=1
	fi
	(exit "$rc")
	teardown
}
trap tls_teardown EXIT

[ -f "$MODULE" ] || fail "the provider module $MODULE is not built"

# A provider built with AddressSanitizer (build-asan) can only be loaded by
# uninstrumented programs (openssl, curl, nginx) with the ASan runtime
# loaded first. STOCK_ENV holds what those programs need; empty otherwise.
STOCK_ENV=()
asan_rt=$(ldd "$MODULE" 2>/dev/null | awk '/libasan/ { print $3; exit }')
if [ -n "$asan_rt" ]; then
	STOCK_ENV=(LD_PRELOAD="$asan_rt"
		ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")
fi

# ossl_conf FILE KM SAE GROUPS [TIMEOUT_MS] [BATCH]: an application's
# OpenSSL configuration, from the example template.
ossl_conf() {
	sed -e "/^#/!{s|@MODULE@|$MODULE|;s|@KM@|$2|;s|@SAE@|$3|" \
		-e "s|@GROUPS@|$4|;s|@TIMEOUT_MS@|${5:-3000}|" \
		-e "s|@BATCH@|${6:-1}|}" "$TEMPLATE" >"$1"
	# grep -c reads to the end: no early exit for pipefail to trip on
	[ "$(grep -v '^#' "$1" | grep -c @)" = 0 ] ||
		fail "unfilled field in $1: $(grep -v '^#' "$1" | grep @)"
}

# make_certs: $CA (trust anchor), $CERT and $KEY for localhost/127.0.0.1.
CA="$TMP/ca.pem"
CERT="$TMP/server.pem"
KEY="$TMP/server.key"
make_certs() {
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
	OPENSSL_CONF=/dev/null openssl req -x509 "${ec[@]}" -days 2 \
		-keyout "$TMP/ca.key" -out "$CA" -subj "/CN=qkdn test CA" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign >/dev/null 2>&1 ||
		fail "cannot make the test CA"
	OPENSSL_CONF=/dev/null openssl req "${ec[@]}" -keyout "$KEY" \
		-out "$TMP/server.csr" -subj /CN=localhost >/dev/null 2>&1 ||
		fail "cannot make the server key"
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TMP/san.ext"
	OPENSSL_CONF=/dev/null openssl x509 -req -in "$TMP/server.csr" \
		-CA "$CA" -CAkey "$TMP/ca.key" -CAcreateserial -days 2 \
		-extfile "$TMP/san.ext" -out "$CERT" >/dev/null 2>&1 ||
		fail "cannot sign the server certificate"
}

# tls_net_up: the two-node network of lib.sh (SAEs alice on A, bob on B)
# with key in A's pool, and certificates.
tls_net_up() {
	write_net "${1:-8000000}"
	net_up
	wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"
	make_certs
}

# bg_start NAME CMD...: run CMD in the background, output in $TMP/NAME.out;
# its pid in BG_PID. Stopped at exit.
bg_start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.out" 2>&1 </dev/null &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# bg_stop PID: SIGTERM, up to 5 s to exit, then SIGKILL; reaps it.
bg_stop() {
	kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
	kill -TERM "$1" 2>/dev/null || true
	wait_for 5 bash -c "! kill -0 $1 2>/dev/null" ||
		kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# tls_port: a free loopback port (lib.sh's free_port)
tls_port() { free_port; }

# port_listening PORT: something listens on 127.0.0.1:PORT (or any
# address), read from /proc so that no probe connection is made.
port_listening() {
	awk -v p="$(printf '%04X' "$1")" \
		'$4 == "0A" && substr($2, index($2, ":") + 1) == p { f = 1 }
		 END { exit !f }' /proc/net/tcp
}

# wait_listen PID PORT NAME: until PID listens on PORT (10 s); fails at
# once if PID exits first.
wait_listen() {
	local deadline=$(($(date +%s) + 10))
	until port_listening "$2"; do
		kill -0 "$1" 2>/dev/null ||
			fail "$3 exited before listening: $(tail -n 20 "$TMP/$3.out")"
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "$3 did not listen on port $2 within 10 s"
		sleep 0.05
	done
}

# start_s_server NAME CONF PORT [ARGS...]: openssl s_server, TLS 1.3 only,
# -rev (answers each line reversed; a line "CLOSE" ends the connection),
# -trace (every handshake message, into $TMP/NAME.trace). Waits until it
# listens.
start_s_server() {
	local name=$1 conf=$2 port=$3
	shift 3
	bg_start "$name" env "${STOCK_ENV[@]}" OPENSSL_CONF="$conf" \
		openssl s_server -accept "127.0.0.1:$port" -cert "$CERT" \
		-key "$KEY" -tls1_3 -rev -trace -msgfile "$TMP/$name.trace" "$@"
	wait_listen "$BG_PID" "$port" "$name"
}

# s_client NAME CONF PORT GROUPS [ARGS...]: one openssl s_client handshake
# offering GROUPS, verifying the server, that sends $LINE and CLOSE; output
# in $TMP/NAME.out, the -trace of the handshake in $TMP/NAME.trace; exit
# status that of s_client (124: timed out after 20 s).
LINE="hello over a QKD key"
s_client() {
	local name=$1 conf=$2 port=$3 groups=$4
	shift 4
	printf '%s\nCLOSE\n' "$LINE" |
		env "${STOCK_ENV[@]}" OPENSSL_CONF="$conf" timeout 20 \
			openssl s_client -connect "127.0.0.1:$port" \
			-servername localhost -verify_hostname localhost \
			-CAfile "$CA" -verify_return_error -groups "$groups" \
			-trace -msgfile "$TMP/$name.trace" -ign_eof "$@" \
			>"$TMP/$name.out" 2>&1
}

# reply_ok FILE: the server's answer to $LINE (reversed) is in FILE.
reply_ok() {
	local i r=""
	for ((i = ${#LINE} - 1; i >= 0; i--)); do
		r+=${LINE:i:1}
	done
	grep -qxF "$r" "$1"
}

# hello_shares NAME: one line "GROUP LEN HEX" per ServerHello in the trace
# of s_client or s_server NAME (the one received; each one sent):
# the key_share's group (decimal) and key_exchange (length, hex).
hello_shares() {
	awk '/ServerHello, Length=/ { sh = 1; g = "" }
	     sh && /NamedGroup:/ && match($0, /\([0-9]+\)/) {
		g = substr($0, RSTART + 1, RLENGTH - 2)
	     }
	     sh && /key_exchange:/ && match($0, /len=[0-9]+/) {
		print g, substr($0, RSTART + 4, RLENGTH - 4), $NF; sh = 0
	     }' "$TMP/$1.trace"
}

# qkdn_error FILE...: the first error the provider raised, printed by
# ERR_print_errors in FILE, as "reason: detail".
qkdn_error() {
	grep -h -m1 ':qkdn:' "$@" | head -n 1 |
		sed -E 's/.*:qkdn:[^:]*:([^:]*):[^:]*:[0-9]+:(.*)/\1: \2/'
}

# The code points of the provider's groups (its defaults).
GROUP_QKD=$((0xFE60))
GROUP_X25519_QKD=$((0xFE61))

# uuid HEX32: a 16-byte key ID in hex as a UUID.
uuid() {
	local h=${1,,}
	echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}

supplied() { "$QKDN" status --km "ipc://$RUN/$1.ak" --json | jq .supplied; }

# elapsed_ms START_NS: milliseconds since START_NS ($(date +%s%N)).
elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# wait_exit PID SECONDS: until PID has exited (then reaped); 1 if not.
wait_exit() {
	wait_for "$2" bash -c "! kill -0 $1 2>/dev/null" || return 1
	wait "$1" 2>/dev/null || true
}

# flip_byte FILE OFFSET: flip the lowest bit of one byte in place.
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || fail "flip_byte: $1 has no byte at $2"
	printf "\\$(printf '%03o' $((b ^ 1)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# hex_at FILE OFFSET LEN: LEN bytes of FILE from OFFSET, in hex.
hex_at() { od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }

# nginx_start WORKERS CURVES PAGE: stock nginx serving PAGE over TLS 1.3 in
# $ND (made here) on a free port ($port), with ssl_ecdh_curve CURVES and
# OPENSSL_CONF=$TMP/server.cnf, started in the background ($nginx_pid) and
# listening when this returns; it logs "pid protocol curve status" per
# request in $ND/access.log
nginx_start() {
	ND="$TMP/nginx"
	mkdir -p "$ND/html" "$ND/tmp"
	printf '<p>%s</p>\n' "$3" >"$ND/html/index.html"
	port=$(tls_port)
	local user=""
	# as root the workers would become "nobody" and lose the Ak socket
	[ "$(id -u)" -ne 0 ] || user="user root;"
	cat >"$ND/nginx.conf" <<CONF
$user
master_process on;
worker_processes $1;
daemon off;
pid $ND/nginx.pid;
error_log $ND/error.log info;
env OPENSSL_CONF;
events { worker_connections 64; }
http {
	log_format qkdn '\$pid \$ssl_protocol \$ssl_curve \$status';
	access_log $ND/access.log qkdn;
	client_body_temp_path $ND/tmp/body;
	proxy_temp_path $ND/tmp/proxy;
	fastcgi_temp_path $ND/tmp/fastcgi;
	uwsgi_temp_path $ND/tmp/uwsgi;
	scgi_temp_path $ND/tmp/scgi;
	server {
		listen 127.0.0.1:$port ssl reuseport;
		ssl_certificate $CERT;
		ssl_certificate_key $KEY;
		ssl_protocols TLSv1.3;
		ssl_ecdh_curve $2;
		ssl_session_tickets off;
		root $ND/html;
	}
}
CONF
	bg_start nginx env "${STOCK_ENV[@]}" OPENSSL_CONF="$TMP/server.cnf" \
		nginx -p "$ND" -c "$ND/nginx.conf" -e "$ND/error.log"
	nginx_pid=$BG_PID
	wait_listen "$nginx_pid" "$port" nginx
}
