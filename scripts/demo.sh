#!/usr/bin/env bash
# The demo: set up and build, start a local two-node QKD network (emulated
# QKD link, two key managers), take a key for bob at alice's node (Q.4160
# I.1 steps 1-2), fetch it by ID at bob's node (steps 4-5), and show both
# side by side. Then stock `openssl s_server` (alice) and `openssl s_client`
# (bob), which load the qkdn provider only through OPENSSL_CONF, make a TLS
# 1.3 connection on the x25519_qkd group: the ServerHello carries the key
# ID, each KM supplies one key, and the key cannot be fetched again.
# Everything is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

QKDN=build/bin/qkdn
TMP=$(mktemp -d /tmp/qkdn-demo.XXXXXX)
RUN="$TMP/run"
SERVER_PID=""
cleanup() {
	[ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
	[ -z "$SERVER_PID" ] || wait "$SERVER_PID" 2>/dev/null || true
	"$QKDN" net down --run-dir "$RUN" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT

echo "== qkdn net up examples/two-node.cnf"
"$QKDN" net up examples/two-node.cnf --run-dir "$RUN"
AK_A="ipc://$RUN/A.ak"
AK_B="ipc://$RUN/B.ak"

# the emulated link needs a moment to deliver its first key blocks
for _ in $(seq 1 200); do
	out=$("$QKDN" status --km "$AK_A" --json | jq '.links[0].out')
	[ "$out" -ge 64 ] && break
	sleep 0.05
done

echo
echo "== alice (node A) asks KM A for a 256-bit key shared with bob"
src=$("$QKDN" key get --km "$AK_A" --sae alice --to bob --bits 256 --json)
id=$(jq -r '.keys[0].id' <<<"$src")
echo "== bob (node B) fetches key $id from KM B"
dst=$("$QKDN" key get --km "$AK_B" --sae bob --id "$id" --json)

printf '\n%-8s %-66s %s\n' "" "alice @ node A (source)" "bob @ node B (destination)"
printf '%-8s %-66s %s\n' "key ID" "$id" "$(jq -r '.keys[0].id' <<<"$dst")"
printf '%-8s %-66s %s\n' "key" "$(jq -r '.keys[0].key' <<<"$src")" \
	"$(jq -r '.keys[0].key' <<<"$dst")"
if [ "$(jq -r '.keys[0].key' <<<"$src")" = "$(jq -r '.keys[0].key' <<<"$dst")" ]; then
	echo "=> the same key at both ends"
else
	echo "=> MISMATCH" >&2
	exit 1
fi

echo
echo "== a second fetch of the same ID is refused:"
"$QKDN" key get --km "$AK_B" --sae bob --id "$id" || true

echo
echo "== TLS over QKD keys: openssl s_server as alice (node A), s_client as bob (node B)"
# each program gets its own openssl.cnf from the example template; that is
# all it takes to load the provider (no code, no command-line option)
conf() { # conf FILE KM SAE
	sed -e "/^#/!{s|@MODULE@|$PWD/build/lib/qkdn.so|;s|@KM@|$2|;s|@SAE@|$3|" \
		-e "s|@GROUPS@|x25519_qkd:qkd:X25519|;s|@TIMEOUT_MS@|3000|;s|@BATCH@|1|}" \
		examples/openssl-qkdn.cnf.in >"$1"
}
conf "$TMP/alice.cnf" "$AK_A" alice
conf "$TMP/bob.cnf" "$AK_B" bob
echo "   OPENSSL_CONF of alice: km = $AK_A, sae = alice"
echo "   OPENSSL_CONF of bob:   km = $AK_B, sae = bob"
OPENSSL_CONF=/dev/null openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
in_use() { # in_use PORT [STATE]: a TCP socket on PORT (in STATE, 0A: listening)
	awk -v p="$(printf ':%04X' "$1")" -v s="${2:-}" \
		'(s == "" || $4 == s) && index($2, p) == length($2) - 4 { f = 1 } END { exit !f }' \
		/proc/net/tcp
}
port=$((20000 + RANDOM % 12000))
while in_use "$port"; do port=$((20000 + RANDOM % 12000)); done
OPENSSL_CONF="$TMP/alice.cnf" openssl s_server -accept "127.0.0.1:$port" -tls1_3 \
	-cert "$TMP/cert.pem" -key "$TMP/key.pem" -rev -naccept 1 \
	>"$TMP/server.out" 2>&1 </dev/null &
SERVER_PID=$!
for _ in $(seq 1 200); do # until it listens (10 s at most)
	in_use "$port" 0A && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.out"; exit 1; }
	sleep 0.05
done

supplied() { "$QKDN" status --km "$1" --json | jq .supplied; }
a0=$(supplied "$AK_A")
b0=$(supplied "$AK_B")
msg="hello over QKD"
printf '%s\nCLOSE\n' "$msg" | OPENSSL_CONF="$TMP/bob.cnf" timeout 20 openssl s_client \
	-connect "127.0.0.1:$port" -groups x25519_qkd -CAfile "$TMP/cert.pem" \
	-verify_hostname localhost -verify_return_error -trace -msgfile "$TMP/trace" \
	-quiet >"$TMP/client.out" 2>&1 || { cat "$TMP/client.out"; exit 1; }
# the key_share of the ServerHello: the group's code point and, for
# x25519_qkd, the server's X25519 share followed by the 16-byte key ID
read -r group hex < <(awk '/ServerHello, Length=/ { sh = 1 }
	sh && /NamedGroup:/ { match($0, /\([0-9]+\)/); g = substr($0, RSTART + 1, RLENGTH - 2) }
	sh && /key_exchange:/ { print g, $NF; exit }' "$TMP/trace")
kid=${hex: -32}
kid=${kid,,}
kid="${kid:0:8}-${kid:8:4}-${kid:12:4}-${kid:16:4}-${kid:20:12}"
case $group in 65120) name=qkd ;; 65121) name=x25519_qkd ;; *) name=other ;; esac
printf '   %-32s %s\n' "negotiated group (ServerHello):" "$(printf '0x%04X' "$group") ($name)"
printf '   %-32s %s\n' "key ID in the ServerHello:" "$kid"
reply=$(grep -xF "$(rev <<<"$msg")" "$TMP/client.out" || echo "(no answer)")
printf '   %-32s %s\n' "bob sent, alice (-rev) answered:" "'$msg' -> '$reply'"
printf '   %-32s %s\n' "keys supplied by KM A, KM B:" "$a0 -> $(supplied "$AK_A"), $b0 -> $(supplied "$AK_B")"
echo "== bob's s_client already took key $kid from KM B; asking again is refused:"
"$QKDN" key get --km "$AK_B" --sae bob --id "$kid" || true

echo
echo "== qkdn status --km KM A"
"$QKDN" status --km "$AK_A"
