# Python's requests (an independent HTTP client) with client certificates
# from the test PKI drives the gateway's main path: status at A, enc_keys
# (POST) at A, dec_keys (POST) at B returns the same keys, over one
# keep-alive session per SAE; a second dec_keys is 400 "keys not found"
# and a third SAE (mallory) gets 401.
source "$(dirname "$0")/etsi014_lib.sh"
# Debian's python3, whose python3-requests scripts/setup.sh installs
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c 'import requests' 2>/dev/null ||
	fail "python3-requests is missing (scripts/setup.sh installs it)"
etsi014_net
net_up
wait_for 10 has_out_bytes A 8192 || fail "pool of A never filled"
# a CA bundle in the environment overrides a Session's verify (requests
# #3829): the test's CA must be the one checked
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
	"$PY" - "$PKI" "$GW_A" "$GW_B" >"$TMP/py.out" 2>&1 <<'PY' ||
import sys, requests
pki, gw_a, gw_b = sys.argv[1:4]
def session(sae):
    s = requests.Session()
    s.cert = (f"{pki}/{sae}.pem", f"{pki}/{sae}.key")
    s.verify = f"{pki}/ca.pem"
    return s
alice, bob, mallory = session("alice"), session("bob"), session("mallory")
st = alice.get(f"{gw_a}/api/v1/keys/bob/status")
assert st.status_code == 200, st.text
st = st.json()
assert st["master_SAE_ID"] == "alice" and st["slave_SAE_ID"] == "bob", st
enc = alice.post(f"{gw_a}/api/v1/keys/bob/enc_keys", json={"number": 4, "size": 256})
assert enc.status_code == 200, enc.text
keys = enc.json()["keys"]
assert len(keys) == 4
ids = {"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}
dec = bob.post(f"{gw_b}/api/v1/keys/alice/dec_keys", json=ids)
assert dec.status_code == 200, dec.text
assert dec.json()["keys"] == keys, "dec_keys at B differs from enc_keys at A"
again = bob.post(f"{gw_b}/api/v1/keys/alice/dec_keys", json=ids)
assert again.status_code == 400 and again.json()["message"] == "keys not found", again.text
enc = alice.get(f"{gw_a}/api/v1/keys/bob/enc_keys", params={"number": 1})
one = {"key_IDs": [{"key_ID": enc.json()["keys"][0]["key_ID"]}]}
third = mallory.post(f"{gw_b}/api/v1/keys/alice/dec_keys", json=one)
assert third.status_code == 401, third.text
print("ok")
PY
	fail "requests: $(cat "$TMP/py.out")"
[ "$(cat "$TMP/py.out")" = ok ] || fail "requests: $(cat "$TMP/py.out")"
echo "ok: python requests: status, enc_keys at A = dec_keys at B, 400 again, 401 third SAE"
