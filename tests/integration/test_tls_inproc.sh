# The OpenSSL provider in real TLS 1.3 handshakes against a running
# two-node network: a server (SAE alice, KM A) and a client (SAE bob, KM B)
# in one process, each with its own openssl.cnf. Both groups negotiate, both
# ends agree, each handshake costs exactly one key at each KM (batch = 1),
# a tampered key ID or another SAE's ID fails, an unreachable KM fails
# within the timeout naming the cause, the batch cache never crosses a
# fork, and the shipped snippet works with stock openssl s_server/s_client:
# a verified TLS 1.3 session on x25519_qkd (the snippet's first group), data
# echoed, one key at each KM.
source "${QKDN_SRC:?}/tests/integration/tls_lib.sh"

SO="$QKDN_BIN/lib/qkdn.so"
[ -f "$SO" ] || fail "provider not built: $SO"
# hermetic: no system openssl.cnf, no environment overrides
unset QKDN_KM QKDN_SAE QKDN_TIMEOUT_MS QKDN_BATCH OPENSSL_MODULES
: >"$TMP/empty.cnf"
export OPENSSL_CONF="$TMP/empty.cnf"

write_net 8000000
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"

# prov_conf FILE [KEY=VALUE...]: default + qkdn providers, qkdn settings
prov_conf() {
	local f=$1
	shift
	cat >"$f" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
qkdn = qkdn_sect
[default_sect]
activate = 1
[qkdn_sect]
module = $SO
activate = 1
CNF
	for kv in "$@"; do
		echo "${kv%%=*} = ${kv#*=}" >>"$f"
	done
}

prov_conf "$TMP/server.cnf" km="$(AK_A)" sae=alice batch=1
prov_conf "$TMP/client.cnf" km="$(AK_B)" sae=bob
prov_conf "$TMP/mallory.cnf" km="$(AK_B)" sae=mallory
prov_conf "$TMP/server4.cnf" km="$(AK_A)" sae=alice batch=4
prov_conf "$TMP/dead.cnf" km="ipc://$TMP/no-such-km.ak" sae=alice \
	timeout_ms=1000 batch=1
prov_conf "$TMP/none.cnf"
prov_conf "$TMP/nosae.cnf" km="$(AK_A)"
prov_conf "$TMP/bad.cnf" km="$(AK_A)" sae=alice timeout_ms=soon
prov_conf "$TMP/server70.cnf" km="$(AK_A)" sae=alice batch=1 \
	qkd_group_id=0xFE70 x25519_qkd_group_id=65137
prov_conf "$TMP/client70.cnf" km="$(AK_B)" sae=bob \
	qkd_group_id=0xfe70 x25519_qkd_group_id=0xFE71

T="$BIN/tls_inproc"
run() {
	local check=$1
	shift
	"$T" "$check" --km-a "$(AK_A)" --km-b "$(AK_B)" "$@" \
		>"$TMP/t.out" 2>&1 || { cat "$TMP/t.out" >&2; fail "tls_inproc $check $*"; }
	cat "$TMP/t.out"
}
S=(--server-conf "$TMP/server.cnf" --client-conf "$TMP/client.cnf")

# both groups: negotiated as asked, same exported keys, one key per
# handshake at each KM
run handshake "${S[@]}" --group qkd --n 3 --expect-a 3 --expect-b 3
run handshake "${S[@]}" --group x25519_qkd --n 3 --expect-a 3 --expect-b 3
# HelloRetryRequest: the client's first share is X25519, the server only
# takes qkd; and a server without QKD: the client's x25519_qkd share is
# dropped for X25519, costing no key
run handshake "${S[@]}" --group qkd --client-groups X25519:qkd \
	--server-groups qkd --expect-a 1 --expect-b 1
run handshake "${S[@]}" --group X25519 --client-groups x25519_qkd:X25519 \
	--server-groups X25519 --expect-a 0 --expect-b 0
# configured code points
run handshake --server-conf "$TMP/server70.cnf" \
	--client-conf "$TMP/client70.cnf" --group qkd --group-id 0xFE70 \
	--expect-a 1 --expect-b 1
run handshake --server-conf "$TMP/server70.cnf" \
	--client-conf "$TMP/client70.cnf" --group x25519_qkd \
	--group-id 0xFE71 --expect-a 1 --expect-b 1
# a flipped key ID never yields a session
run tamper "${S[@]}" --group qkd
run tamper "${S[@]}" --group x25519_qkd
# EVP level: formats, no KM calls for keygen and size queries, refusals
run kem "${S[@]}" --extra-conf "$TMP/mallory.cnf"
# the batch cache and fork
run fork --server-conf "$TMP/server4.cnf" --client-conf "$TMP/client.cnf" \
	--group qkd
# threads sharing contexts and the cache: every handshake its own key
run threads --server-conf "$TMP/server4.cnf" --client-conf "$TMP/client.cnf" \
	--group x25519_qkd --threads 4 --n 6
# an unreachable KM: fails within the timeout, naming the cause
run dead --server-conf "$TMP/dead.cnf" --client-conf "$TMP/client.cnf" \
	--timeout-ms 1000
# loads without configuration or with a bad value; the groups fail
# cleanly, naming the cause
run nokeygen --server-conf "$TMP/none.cnf" --client-conf "$TMP/client.cnf" \
	--expect-error "no KM configured"
run nokeygen --server-conf "$TMP/nosae.cnf" --client-conf "$TMP/client.cnf" \
	--expect-error "no SAE configured"
run nokeygen --server-conf "$TMP/bad.cnf" --client-conf "$TMP/client.cnf" \
	--expect-error 'bad configuration'
QKDN_TIMEOUT_MS=0x10000000 run nokeygen --server-conf "$TMP/server.cnf" \
	--client-conf "$TMP/client.cnf" --expect-error 'timeout_ms = "0x10000000"'

# The shipped snippet, unchanged, with stock openssl s_server/s_client:
# module found through OPENSSL_MODULES, KM and SAE from the environment, the
# groups the snippet lists (x25519_qkd first). STOCK_ENV (tls_lib.sh)
# preloads the ASan runtime for a provider built with AddressSanitizer.
make_certs
port=$(tls_port)
SNIP="$QKDN_SRC/openssl.cnf.d/qkdn.cnf"
bg_start s_server env "${STOCK_ENV[@]}" OPENSSL_CONF="$SNIP" \
	OPENSSL_MODULES="$QKDN_BIN/lib" QKDN_KM="$(AK_A)" QKDN_SAE=alice \
	QKDN_BATCH=1 openssl s_server -accept "127.0.0.1:$port" -naccept 1 \
	-tls1_3 -cert "$CERT" -key "$KEY" -rev -trace \
	-msgfile "$TMP/s_server.trace"
srv=$BG_PID
wait_listen "$srv" "$port" s_server
a0=$(supplied A)
b0=$(supplied B)
rc=0
printf '%s\nCLOSE\n' "$LINE" | env "${STOCK_ENV[@]}" OPENSSL_CONF="$SNIP" \
	OPENSSL_MODULES="$QKDN_BIN/lib" QKDN_KM="$(AK_B)" QKDN_SAE=bob \
	timeout 20 openssl s_client -connect "127.0.0.1:$port" -tls1_3 \
	-servername localhost -verify_hostname localhost -CAfile "$CA" \
	-verify_return_error -trace -msgfile "$TMP/s_client.trace" -ign_eof \
	>"$TMP/s_client.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "s_client exit $rc: $(cat "$TMP/s_client.out" "$TMP/s_server.out")"
# a failed handshake prints "Verify return code: 0 (ok)" too (no
# certificate, nothing to fail): the certificate (encrypted under the
# handshake keys) and the echoed line show that the session worked
grep -q "^New, TLSv1.3, Cipher is" "$TMP/s_client.out" ||
	fail "s_client: not TLS 1.3: $(tail -n 30 "$TMP/s_client.out")"
grep -q "^Server certificate" "$TMP/s_client.out" &&
	grep -q "^Verify return code: 0 (ok)" "$TMP/s_client.out" ||
	fail "s_client: no verified session: $(tail -n 30 "$TMP/s_client.out")"
reply_ok "$TMP/s_client.out" || fail "s_client: no reversed reply"
read -r g l hex <<<"$(hello_shares s_client | head -n 1)"
[ "${g:-}" = "$GROUP_X25519_QKD" ] && [ "${l:-}" = 48 ] ||
	fail "s_client: ServerHello key_share is group ${g:-none} len ${l:-none}, expected $GROUP_X25519_QKD (x25519_qkd) len 48"
hello_shares s_server | grep -qx "$g $l $hex" ||
	fail "s_server did not send that key_share"
wait_exit "$srv" 10 ||
	fail "s_server still running after its one connection"
[ $(($(supplied A) - a0)) = 1 ] && [ $(($(supplied B) - b0)) = 1 ] ||
	fail "s_server/s_client used $(($(supplied A) - a0)) keys at A, $(($(supplied B) - b0)) at B"
echo "ok: openssl s_server/s_client with openssl.cnf.d/qkdn.cnf: TLS 1.3 on" \
	"x25519_qkd (0x$(printf %04x "$g")), verified, data echoed, one key at" \
	"each KM"
echo "ok: provider TLS checks passed"
