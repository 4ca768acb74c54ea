# Two nodes as two hosts: KM A in network namespace 1 (10.77.0.1), KM B in
# namespace 2 (10.77.0.2), Kx between them over mutually authenticated
# tls+tcp:// only (each namespace has its own loopback: nothing else joins
# them). The emulator runs outside and delivers key over ipc:// (a QKD
# module is local to its node).
#  1. keys flow: alice at A gets keys for bob, bob at B fetches the same;
#  2. a remote Ak over TLS (B's Ak on tls+tcp://, reached from A's
#     namespace): bob's certificate fetches bob's key; mallory's
#     certificate asking as bob is refused (not_authorised, naming both),
#     and so is a client without a certificate; status needs no SAE;
#  3. B's Kx refuses a peer presenting another node's certificate (C's,
#     from the same CA) with one clear log line, and A gets no key; A's
#     sender refuses B when B presents C's certificate;
#     an expired certificate is refused the same way, with the reason;
#  4. a plaintext peer (A told B's Kx is tcp://) is refused by B's TLS
#     listener: "not a TLS client".
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns_lib.sh"
netns_up
CERTS="$TMP/certs"
"$BIN/qkdn-certs" "$CERTS" node A B C sae alice bob mallory >/dev/null ||
	fail "qkdn-certs"
KX_A="tls+tcp://${NS_IP[1]}:17101"
KX_B="tls+tcp://${NS_IP[2]}:17101"
AK_B_TLS="tls+tcp://${NS_IP[2]}:17201"

# cfg FILE [A's cert] [B's kx as A sees it] [B's ak] [B's cert]: a cert
# is a path without .pem/.key (default $CERTS/A and $CERTS/B)
cfg() {
	cat >"$1" <<CNF
[qkdn]
nodes = A, B
links = A_B
saes = alice, bob, mallory
run_dir = $RUN
ca = $CERTS/ca.pem

[A]
kx = $KX_A
cert = ${2:-$CERTS/A}.pem
key = ${2:-$CERTS/A}.key

[B]
kx = ${3:-$KX_B}
ak = ${4:-B.ak}
cert = ${5:-$CERTS/B}.pem
key = ${5:-$CERTS/B}.key

[A_B]
nodes = A, B
rate = 8000000

[alice]
node = A

[bob]
node = B

[mallory]
node = B
CNF
}
cfg "$CFG"

# start_km NS NODE FILE: (re)start the KM of NODE inside namespace NS
start_km() {
	in_ns "$1" "$QKDN" net restart "$2" --config "$3" --run-dir "$RUN" \
		>"$TMP/start.out" 2>&1 ||
		fail "km $2 did not start in namespace $1: $(cat "$TMP/start.out")"
}

mkdir -p "$RUN"
"$BIN/qkdn-qkdsim" --config "$CFG" --run-dir "$RUN" >"$RUN/qkdsim.log" 2>&1 &
SIM_PID=$!
# the emulator goes first at exit; the test's status is kept for the
# teardown that follows (it reads $?; errexit would end the trap at the
# subshell's non-zero exit)
trap "rc=\$?; set +e; kill $SIM_PID 2>/dev/null; (exit \$rc); netns_teardown" EXIT
wait_for 10 test -S "$RUN/sim.ctl" || fail "the emulator did not start"
start_km 1 A "$CFG"
start_km 2 B "$CFG"

# 1. keys between the two hosts
wait_for 10 has_out_bytes A 4096 || fail "A's pool never filled"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --count 4 \
	>"$TMP/keys" 2>"$TMP/err" || fail "no keys over TLS Kx: $(cat "$TMP/err")"
while read -r id key; do
	"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id" >"$TMP/got" ||
		fail "bob could not fetch $id"
	[ "$(cat "$TMP/got")" = "$id $key" ] || fail "key $id differs at B"
done <"$TMP/keys"
[ "$(status A | jq -r '.links[0].up')" = true ] || fail "A: link not up"

# 2. B's Ak on tls+tcp://, used from the other host (namespace 1)
cfg "$TMP/b-ak.cnf" "$CERTS/A" "$KX_B" "$AK_B_TLS"
start_km 2 B "$TMP/b-ak.cnf"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >"$TMP/k2" ||
	fail "no key for the remote Ak phase"
id=$(cut -d' ' -f1 "$TMP/k2")
# remote SAE CMD...: run the CLI in namespace 1 with SAE's certificate
remote() {
	local sae=$1
	shift
	in_ns 1 "$QKDN" "$@" --km "$AK_B_TLS" --ca "$CERTS/ca.pem" \
		--cert "$CERTS/$sae.pem" --key "$CERTS/$sae.key" --km-name B
}
remote mallory key get --sae bob --id "$id" --json >"$TMP/m.json" \
	2>/dev/null && fail "mallory's certificate fetched bob's key"
[ "$(jq -r .error.name "$TMP/m.json")" = not_authorised ] ||
	fail "mallory as bob: $(cat "$TMP/m.json")"
grep -q "certificate names mallory, not SAE bob" \
	<<<"$(jq -r .error.reason "$TMP/m.json")" ||
	fail "the refusal does not name the two: $(cat "$TMP/m.json")"
# a TLS client without a certificate (the CLI would not even try)
in_ns 1 env OPENSSL_CONF=/dev/null openssl s_client -connect \
	"${NS_IP[2]}:17201" -CAfile "$CERTS/ca.pem" </dev/null >/dev/null 2>&1 || true
remote bob key get --sae bob --id "$id" >"$TMP/got" ||
	fail "bob's certificate could not fetch bob's key"
[ "$(cat "$TMP/got")" = "$(cat "$TMP/k2")" ] || fail "remote key differs"
remote alice status --json >"$TMP/st.json" || fail "remote status"
[ "$(jq -r .node "$TMP/st.json")" = B ] || fail "status: $(cat "$TMP/st.json")"
wait_for 5 grep -q "Ak connection from ${NS_IP[1]}:[0-9]*: no certificate" \
	"$RUN/km-B.log" ||
	fail "B did not log the client without a certificate"
start_km 2 B "$CFG"

# 3. A presents C's certificate (same CA, another node): B refuses its
# syncs, A's key request fails, B logs why
cfg "$TMP/a-as-c.cnf" "$CERTS/C"
start_km 1 A "$TMP/a-as-c.cnf"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json \
	>"$TMP/c.json" 2>/dev/null && fail "A got a key while presenting C's certificate"
grep -q "certificate names C, but link A_B joins this node to A" \
	"$RUN/km-B.log" || fail "B did not say why it refused C: $(cat "$TMP/c.json")"
# ... and B presenting C's certificate is refused by A's sender
start_km 1 A "$CFG"
cfg "$TMP/b-as-c.cnf" "$CERTS/A" "$KX_B" B.ak "$CERTS/C"
start_km 2 B "$TMP/b-as-c.cnf"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --json \
	>"$TMP/c2.json" 2>/dev/null && fail "A took B's acknowledgement under C's certificate"
grep -q "names C" <<<"$(jq -r .error.reason "$TMP/c2.json")" ||
	fail "A's refusal does not name the certificate: $(cat "$TMP/c2.json")"
start_km 2 B "$CFG"

# ... and so is an expired certificate of A, with the reason
"$BIN/qkdn-certs" "$TMP/old" --ca-dir "$CERTS" --expired node A >/dev/null ||
	fail "qkdn-certs --expired"
cfg "$TMP/expired.cnf" "$TMP/old/A"
start_km 1 A "$TMP/expired.cnf"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >/dev/null 2>&1 &&
	fail "A got a key while presenting an expired certificate"
grep -q "certificate has expired" "$RUN/km-B.log" ||
	fail "B did not log the expired certificate"

# 4. A speaks plaintext to B's TLS listener
cfg "$TMP/plain.cnf" "$CERTS/A" "tcp://${NS_IP[2]}:17101"
start_km 1 A "$TMP/plain.cnf"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >/dev/null 2>&1 &&
	fail "a key crossed a plaintext connection to a TLS listener"
wait_for 5 grep -q "not a TLS client" "$RUN/km-B.log" ||
	fail "B did not log the plaintext peer"
start_km 1 A "$CFG"
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob >/dev/null ||
	fail "keys did not resume with the right certificates"
echo "ok: keys over tls+tcp:// between two namespaces; remote Ak per" \
	"certificate SAE; another node's certificate and a plaintext peer refused"
