# The gateway on a tls+tcp:// Ak (docs/etsi014.md, km/ak.c is_gateway):
# both KMs listen for Ak on tls+tcp:// with the network's CA, and each
# gateway shows its own certificate (CN etsi014-<node>, the default
# etsi014_name), signed by that CA. Asserts:
#  - the gateways speak for their node's SAEs: a key from enc_keys at A
#    equals dec_keys at B, and Status answers (it asks as the gateway);
#  - the same KM refuses a client certificate that claims an SAE it does
#    not name: mallory's certificate asking as alice, and gateway B's
#    certificate (CN etsi014-B) asking KM A as alice (it is not A's
#    gateway), both not_authorised naming the certificate's CN;
#  - a certificate named etsi014-A but signed by another CA gets no TLS
#    session with KM A;
#  - alice's own certificate still gets keys over tls+tcp:// (the usual
#    rule: CN = the SAE).
source "$(dirname "$0")/etsi014_lib.sh"
mkdir -p "$PKI"
"$BIN/qkdn-certs" "$PKI" node A B sae alice bob mallory >/dev/null ||
	fail "qkdn-certs"
# the gateways' certificates from the same CA (qkdn-etsi014-certs keeps
# the CA and the SAE certificates it finds)
"$BIN/qkdn-etsi014-certs" "$PKI" gw etsi014-A 127.0.0.1 gw etsi014-B \
	127.0.0.1 sae alice bob mallory >/dev/null || fail "qkdn-etsi014-certs"
AKA="tls+tcp://127.0.0.1:$(free_port)"
AKB="tls+tcp://127.0.0.1:$(free_port)"
etsi014_net
sed -i -e "/^\[qkdn\]$/a ca = $PKI/ca.pem" \
	-e "/^\[A\]$/a ak = $AKA\ncert = $PKI/A.pem\nkey = $PKI/A.key\netsi014_cert = $PKI/etsi014-A.pem\netsi014_key = $PKI/etsi014-A.key" \
	-e "/^\[B\]$/a ak = $AKB\ncert = $PKI/B.pem\nkey = $PKI/B.key\netsi014_cert = $PKI/etsi014-B.pem\netsi014_key = $PKI/etsi014-B.key" \
	"$CFG"
net_up
tls_status() {
	"$QKDN" status --km "$AKA" --ca "$PKI/ca.pem" --cert "$PKI/alice.pem" \
		--key "$PKI/alice.key" --km-name A --json
}
filled() { [ "$(tls_status | jq '.links[0].out')" -ge 8192 ]; }
wait_for 10 filled || fail "pool of A never filled: $(tls_status)"
K="api/v1/keys"

# ---- the gateways speak for their SAEs over tls+tcp:// ----
call st alice "$GW_A/$K/bob/status"
expect st 200
jq -e '.master_SAE_ID == "alice" and .max_key_count > 0' "$TMP/st.json" \
	>/dev/null || fail "status: $(body st)"
call e1 alice "$GW_A/$K/bob/enc_keys?number=2"
expect e1 200
call d1 bob "$GW_B/$K/alice/dec_keys" \
	-d "$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$TMP/e1.json")"
expect d1 200
[ "$(jq -c .keys "$TMP/d1.json")" = "$(jq -c .keys "$TMP/e1.json")" ] ||
	fail "dec_keys at B differs from enc_keys at A"
echo "ok: gateways (certificates etsi014-A, etsi014-B) get keys over tls+tcp:// Ak"

# ---- another certificate claiming an SAE it is not: refused ----
# ak_as NAME CERT SAE: key get at KM A as SAE with CERT.pem/.key
ak_as() {
	"$QKDN" key get --km "$AKA" --ca "$PKI/ca.pem" --cert "$2.pem" \
		--key "$2.key" --km-name A --sae "$3" --to bob --json \
		>"$TMP/$1.json" 2>"$TMP/$1.err"
}
refused() {
	[ "$(jq -r .error.name "$TMP/$1.json")" = not_authorised ] &&
		grep -q "certificate names $2, not SAE alice" "$TMP/$1.json" ||
		fail "$1: $(cat "$TMP/$1.json" "$TMP/$1.err")"
}
ak_as m1 "$PKI/mallory" alice && fail "mallory's certificate got alice's keys"
refused m1 mallory
ak_as g1 "$PKI/etsi014-B" alice && fail "gateway B's certificate got keys at A"
refused g1 etsi014-B
echo "ok: mallory's and gateway B's certificates cannot speak for alice at KM A"

"$BIN/qkdn-certs" "$TMP/rogue" node etsi014-A >/dev/null || fail "qkdn-certs"
ak_as r1 "$TMP/rogue/etsi014-A" alice && fail "another CA's etsi014-A got keys"
jq -e '.error.name != null' "$TMP/r1.json" >/dev/null ||
	fail "r1: $(cat "$TMP/r1.json" "$TMP/r1.err")"
echo "ok: a certificate named etsi014-A from another CA: refused ($(jq -r .error.name "$TMP/r1.json"))"

ak_as a1 "$PKI/alice" alice || fail "alice over tls+tcp: $(cat "$TMP/a1.json")"
echo "ok: alice's own certificate gets keys"
