# The ETSI GS QKD 014 gateway (qkdn-etsi014, docs/etsi014.md) driven by
# curl with client certificates from the test PKI `qkdn net up` makes:
#  - net up prints where the PKI is; status gives every field of the
#    spec's Status, and its limits are the KM's: each equals what the KM's
#    own status (qkdn status --json) reports, the boundary values pass and
#    one past each is 400; restarting KM A with another pool cap changes
#    max_key_count to the new cap (the gateway, not restarted, asks the
#    KM rather than its copy of the network file);
#  - a key from enc_keys (GET and POST) at A equals the key from dec_keys
#    (GET and POST) at B and the key fetched by ID over Ak (qkdn key get),
#    and the reverse (Ak at A, dec_keys at B; enc_keys at B, dec_keys at A);
#  - dec_keys naming another master_SAE_ID than the SAE that asked for the
#    key (an SAE of either node) is 401 and takes nothing: the right
#    master then gets the key;
#  - a second dec_keys of a key is 400 "keys not found"; a third SAE's
#    certificate gets 401 and changes nothing; an SAE of another node gets
#    401; every bad request is 400 with an Error body; unsupported
#    extension_mandatory is refused naming it, extension_optional ignored;
#  - no client certificate or one of another CA: no TLS session;
#  - keep-alive: two requests on one connection;
#  - the KM trusts only the configured gateway identity: gateway B is
#    configured with another uid, so it cannot speak for erin (uid set),
#    while gateway A (the KM's uid) speaks for dave (uid set) of node A;
#  - qkdn net status (--json and text) shows each node's gateway: its
#    address, running and answering; once the KMs are stopped the KMs
#    show down and the gateways still answer, and a stopped gateway shows
#    down;
#  - 503 with an Error body when the peer KM or the KM is down (for a
#    request larger than the gateway's key stock: test_etsi014_stock.sh);
#  - no key of any reply appears in any log.
source "$(dirname "$0")/etsi014_lib.sh"
me=$(id -u)
other=$((me + 1))
etsi014_net "dave A $other
erin B $other" "etsi014_uid = $other"
net_up
grep -qF "etsi014 test PKI: $PKI" "$TMP/up.out" ||
	fail "net up did not say where the PKI is: $(cat "$TMP/up.out")"
for f in ca.pem alice.pem alice.key bob.pem bob.key etsi014-A.pem; do
	[ -f "$PKI/$f" ] || fail "no $PKI/$f"
done
wait_for 10 has_out_bytes A 8192 || fail "pool of A never filled"
wait_for 10 has_out_bytes B 8192 || fail "pool of B never filled"
K="api/v1/keys"

# ---- net status: each node's gateway ----
"$QKDN" net status "$CFG" --json >"$TMP/ns.json" || fail "net status: $(cat "$TMP/ns.json")"
jq -e --arg a "$GW_A" --arg b "$GW_B" '[.nodes[] | {(.id): .}] | add |
	.A.etsi014.url == $a and .B.etsi014.url == $b and
	([.A, .B][] | .etsi014.running and .etsi014.answering and
		.etsi014.pid > 0 and .km.running and .km.answering)' \
	"$TMP/ns.json" >/dev/null || fail "net status: $(cat "$TMP/ns.json")"
"$QKDN" net status "$CFG" >"$TMP/ns.txt" || fail "net status (text)"
grep -qE "^A +answering \(pid [0-9]+\) +$GW_A answering \(pid [0-9]+\)$" "$TMP/ns.txt" ||
	fail "net status text: $(cat "$TMP/ns.txt")"
echo "ok: net status shows both gateways running and answering"

# ---- Status: every field, and the limits the KM enforces ----
call st alice "$GW_A/$K/bob/status"
expect st 200
jq -e '.source_KME_ID == "A" and .target_KME_ID == "B" and
	.master_SAE_ID == "alice" and .slave_SAE_ID == "bob" and
	.key_size == 256 and .max_SAE_ID_count == 0 and
	.min_key_size == 8 and .stored_key_count > 0 and
	.max_key_count >= .stored_key_count and
	([.max_key_per_request, .max_key_size] | all(. > 0))' \
	"$TMP/st.json" >/dev/null || fail "status: $(body st)"
# each limit is the one the KM reports (keys of key_size: 32 bytes)
status A >"$TMP/kmA.json" || fail "no status from KM A"
jq -e --slurpfile st "$TMP/st.json" '$st[0] as $s | .limits as $l |
	(.links[] | select(.link == "A_B") | .out_max / 32) == $s.max_key_count and
	$l.min_bits == $s.min_key_size and $l.max_bits == $s.max_key_size and
	([$l.max_keys, ($l.max_request_bytes / 32 | floor)] | min) ==
		$s.max_key_per_request and $s.max_key_count > 0' \
	"$TMP/kmA.json" >/dev/null ||
	fail "status $(body st) is not the KM's $(cat "$TMP/kmA.json")"
maxn=$(jq .max_key_per_request "$TMP/st.json")
maxs=$(jq .max_key_size "$TMP/st.json")
mins=$(jq .min_key_size "$TMP/st.json")
call lim1 alice "$GW_A/$K/bob/enc_keys?number=$maxn&size=$mins"
expect lim1 200
[ "$(jq '.keys | length' "$TMP/lim1.json")" = "$maxn" ] || fail "lim1"
call lim2 alice "$GW_A/$K/bob/enc_keys?size=$maxs"
expect lim2 200
call lim3 alice "$GW_A/$K/bob/enc_keys?number=$((maxn + 1))&size=$mins"
expect_error lim3 400 "too many keys requested"
call lim4 alice "$GW_A/$K/bob/enc_keys?size=$((maxs + 8))"
expect_error lim4 400 "bad key size"
call lim5 alice "$GW_A/$K/bob/enc_keys?size=$((mins - 8))"
expect_error lim5 400 "bad key size"
echo "ok: status has every field; its limits are the KM's"

# ---- A -> B: enc_keys GET, dec_keys GET and POST, and Ak by ID ----
call e1 alice "$GW_A/$K/bob/enc_keys?number=3&size=128"
expect e1 200
jq -e '.keys | length == 3 and all(.key_ID | test("^[0-9a-f-]{36}$"))' \
	"$TMP/e1.json" >/dev/null || fail "e1: $(body e1)"
[ "$(jq -r '.keys[0].key' "$TMP/e1.json" | base64 -d | wc -c)" = 16 ] ||
	fail "e1: a 128-bit key is not 16 bytes"
id0=$(jq -r '.keys[0].key_ID' "$TMP/e1.json")
id1=$(jq -r '.keys[1].key_ID' "$TMP/e1.json")
id2=$(jq -r '.keys[2].key_ID' "$TMP/e1.json")
call d0 bob "$GW_B/$K/alice/dec_keys?key_ID=$id0"
expect d0 200
[ "$(jq -c '.keys[0]' "$TMP/d0.json")" = "$(jq -c '.keys[0]' "$TMP/e1.json")" ] ||
	fail "dec_keys GET at B differs from enc_keys at A"
call d1 bob "$GW_B/$K/alice/dec_keys" \
	-H 'Content-Type: application/json' \
	-d "{\"key_IDs\":[{\"key_ID\":\"$id1\",\"key_ID_extension\":{\"x\":1}}],\"key_IDs_extension\":{}}"
expect d1 200
[ "$(jq -c '.keys[0]' "$TMP/d1.json")" = "$(jq -c '.keys[1]' "$TMP/e1.json")" ] ||
	fail "dec_keys POST at B differs from enc_keys at A"
"$QKDN" key get --km "$(AK_B)" --sae bob --id "$id2" --json >"$TMP/ak2.json" ||
	fail "Ak by ID at B: $(cat "$TMP/ak2.json")"
[ "$(jq -r '.keys[0].key' "$TMP/ak2.json")" = \
	"$(jq -r '.keys[2].key' "$TMP/e1.json" | base64 -d | od -An -v -tx1 | tr -d " \n")" ] ||
	fail "Ak at B: $(cat "$TMP/ak2.json") differs from enc_keys at A"
echo "ok: enc_keys at A = dec_keys (GET, POST) at B = key by ID over Ak at B"

# ---- the reverse: Ak at A -> dec_keys at B; enc_keys POST at B -> A ----
"$QKDN" key get --km "$(AK_A)" --sae alice --to bob --bits 256 --json \
	>"$TMP/ak3.json" || fail "Ak key at A: $(cat "$TMP/ak3.json")"
id3=$(jq -r '.keys[0].id' "$TMP/ak3.json")
call d3 bob "$GW_B/$K/alice/dec_keys" -d "{\"key_IDs\":[{\"key_ID\":\"$id3\"}]}"
expect d3 200
[ "$(jq -r '.keys[0].key' "$TMP/d3.json" | base64 -d | od -An -v -tx1 | tr -d " \n")" = \
	"$(jq -r '.keys[0].key' "$TMP/ak3.json")" ] ||
	fail "dec_keys at B differs from the Ak key at A"
call e4 bob "$GW_B/$K/alice/enc_keys" \
	-d '{"number":2,"size":256,"extension_optional":[{"abc":1}]}'
expect e4 200
call d4 alice "$GW_A/$K/bob/dec_keys" \
	-d "$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$TMP/e4.json")"
expect d4 200
[ "$(jq -c .keys "$TMP/d4.json")" = "$(jq -c .keys "$TMP/e4.json")" ] ||
	fail "enc_keys at B differs from dec_keys at A"
echo "ok: Ak at A = dec_keys at B; enc_keys POST at B = dec_keys POST at A"

# ---- 400 keys not found, 401 ----
call again bob "$GW_B/$K/alice/dec_keys?key_ID=$id0"
expect_error again 400 "keys not found"
call unk bob "$GW_B/$K/alice/dec_keys?key_ID=01234567-89ab-7def-8123-456789abcdef"
expect_error unk 400 "keys not found"
call e5 alice "$GW_A/$K/bob/enc_keys"
expect e5 200
id5=$(jq -r '.keys[0].key_ID' "$TMP/e5.json")
call third mallory "$GW_B/$K/alice/dec_keys?key_ID=$id5"
expect third 401
call d5 bob "$GW_B/$K/alice/dec_keys?key_ID=$id5"
expect d5 200 # the refusal consumed nothing
call wrongkme bob "$GW_A/$K/alice/enc_keys"
expect wrongkme 401
echo "ok: second dec_keys 400, third SAE 401 (key kept), SAE of another node 401"

# ---- master_SAE_ID must be the SAE that asked for the key ----
call e6 alice "$GW_A/$K/bob/enc_keys?number=2"
expect e6 200
call m1 bob "$GW_B/$K/mallory/dec_keys?key_ID=$(jq -r '.keys[0].key_ID' "$TMP/e6.json")"
expect_error m1 401 "not authorised"
jq -e '.details[0].reason | test("from SAE mallory")' "$TMP/m1.json" >/dev/null ||
	fail "m1: $(body m1)"
call m2 bob "$GW_B/$K/dave/dec_keys" \
	-d "$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$TMP/e6.json")"
expect m2 401
call m3 bob "$GW_B/$K/alice/dec_keys" \
	-d "$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' "$TMP/e6.json")"
expect m3 200 # the refusals took nothing
[ "$(jq -c .keys "$TMP/m3.json")" = "$(jq -c .keys "$TMP/e6.json")" ] ||
	fail "m3: $(body m3) differs from $(body e6)"
echo "ok: dec_keys naming another master_SAE_ID 401, the key kept for the right one"

# ---- every other error path: 400 with an Error body, 404 ----
call b1 alice "$GW_A/$K/bob/enc_keys" -d '{"number":1,"size":7}'
expect_error b1 400 "bad key size"
call b2 alice "$GW_A/$K/bob/enc_keys?number=0"
expect_error b2 400 "too many keys requested"
call b3 alice "$GW_A/$K/bob/enc_keys" -d '{"number":'
expect_error b3 400 "bad request format"
call b4 alice "$GW_A/$K/bob/enc_keys" -d '{"number":"two"}'
expect_error b4 400 "bad request format"
call b5 alice "$GW_A/$K/bob/enc_keys?number=x"
expect_error b5 400 "bad request format"
call b6 alice "$GW_A/$K/bob/enc_keys" \
	-d '{"extension_mandatory":[{"abc_route":"x"}],"extension_optional":[{"y":1}]}'
expect_error b6 400 "not all extension_mandatory parameters are supported"
jq -e '.details[0].extension_mandatory_unsupported == "abc_route"' \
	"$TMP/b6.json" >/dev/null || fail "b6: $(body b6)"
call b7 alice "$GW_A/$K/bob/enc_keys" -d '{"additional_slave_SAE_IDs":["mallory"]}'
expect_error b7 400 "additional_slave_SAE_IDs not supported"
call b8 alice "$GW_A/$K/nobody/enc_keys"
expect_error b8 400 "bad request format"
call b9 bob "$GW_B/$K/alice/dec_keys?key_ID=not-a-uuid"
expect_error b9 400 "bad request format"
call b10 bob "$GW_B/$K/alice/dec_keys" -d '{"key_IDs":[]}'
expect_error b10 400 "bad request format"
call b11 alice "$GW_A/$K/bob/enc_keys?number=4096&size=8192"
expect_error b11 400 "value too large" # the KM's 512 KiB a request
call b12 alice "$GW_A/api/v1/other"
expect b12 404
echo "ok: bad size, number, JSON, extensions, SAE, key ID: 400 with an Error body"

# ---- TLS: no client certificate, or one of another CA ----
curl -sS --cacert "$PKI/ca.pem" "$GW_A/$K/bob/status" >/dev/null 2>&1 &&
	fail "served without a client certificate"
"$BIN/qkdn-certs" "$TMP/rogue" sae alice >/dev/null || fail "qkdn-certs"
curl -sS --cacert "$PKI/ca.pem" --cert "$TMP/rogue/alice.pem" \
	--key "$TMP/rogue/alice.key" "$GW_A/$K/bob/status" >/dev/null 2>&1 &&
	fail "served a certificate of another CA"
echo "ok: no client certificate, or another CA's: no TLS session"

# ---- keep-alive ----
curl -sv --cacert "$PKI/ca.pem" --cert "$PKI/alice.pem" --key "$PKI/alice.key" \
	"$GW_A/$K/bob/status" "$GW_A/$K/bob/status" >/dev/null 2>"$TMP/ka.err" ||
	fail "keep-alive"
grep -q "Re-using existing connection" "$TMP/ka.err" ||
	fail "the second request did not reuse the connection"
echo "ok: HTTP/1.1 keep-alive"

# ---- trust: only the gateway's configured identity speaks for SAEs ----
call dv dave "$GW_A/$K/bob/enc_keys"
expect dv 200
call ev erin "$GW_B/$K/alice/enc_keys"
expect ev 401
grep -q "SAE erin must connect as uid $other" "$TMP/ev.json" ||
	fail "erin: $(body ev)"
"$QKDN" key get --km "$(AK_B)" --sae erin --to alice --json >"$TMP/erin.json" &&
	fail "erin served over Ak to another uid"
[ "$(jq -r .error.name "$TMP/erin.json")" = not_authorised ] ||
	fail "erin: $(cat "$TMP/erin.json")"
echo "ok: gateway A speaks for dave (uid $other); gateway B (not its etsi014_uid) cannot for erin"

# ---- no key in any log ----
for f in "$TMP"/*.json; do
	# 16 bytes or more: a short key's base64 could match by chance
	jq -r '.keys[]?.key // empty | select(length >= 24)' "$f" 2>/dev/null
done | sort -u >"$TMP/keys.txt"
[ -s "$TMP/keys.txt" ] || fail "no keys collected"
if grep -F -f "$TMP/keys.txt" "$RUN"/*.log; then fail "a key in a log"; fi
echo "ok: $(wc -l <"$TMP/keys.txt") keys seen, none in a log"

# ---- 503: the peer KM down, then the KM itself ----
kill "$(cat "$RUN/km-B.pid")"
wait_for 10 sh -c "! kill -0 $(cat "$RUN/km-B.pid") 2>/dev/null" || fail "KM B still runs"
# 33 keys: more than gateway A's key stock holds (etsi014_stock, default
# 32), so the request goes to the KM; a request the stock can serve would
# rightly succeed (its keys were taken, and synced to B, before B stopped)
call u1 alice "$GW_A/$K/bob/enc_keys?number=33"
expect u1 503
jq -e '.message | length > 0' "$TMP/u1.json" >/dev/null || fail "u1: $(body u1)"
kill "$(cat "$RUN/km-A.pid")"
wait_for 10 sh -c "! kill -0 $(cat "$RUN/km-A.pid") 2>/dev/null" || fail "KM A still runs"
call u2 alice "$GW_A/$K/bob/status"
expect u2 503
jq -e '.message | length > 0' "$TMP/u2.json" >/dev/null || fail "u2: $(body u2)"
echo "ok: 503 with an Error body when the peer KM, then the KM, is down"
"$QKDN" net status "$CFG" --json >"$TMP/ns2.json" || fail "net status: $(cat "$TMP/ns2.json")"
jq -e '[.nodes[] | (.km.answering or .km.running) | not] | all' "$TMP/ns2.json" \
	>/dev/null || fail "KMs not shown down: $(cat "$TMP/ns2.json")"
jq -e '[.nodes[] | .etsi014.answering] | all' "$TMP/ns2.json" >/dev/null ||
	fail "gateways not shown answering: $(cat "$TMP/ns2.json")"
kill "$(cat "$RUN/etsi014-B.pid")"
wait_for 10 sh -c "! kill -0 $(cat "$RUN/etsi014-B.pid") 2>/dev/null" || fail "gateway B still runs"
"$QKDN" net status "$CFG" --json >"$TMP/ns3.json" || fail "net status: $(cat "$TMP/ns3.json")"
jq -e '.nodes[] | select(.id == "B") | .etsi014 |
	(.answering or .running) | not' "$TMP/ns3.json" >/dev/null ||
	fail "gateway B not shown down: $(cat "$TMP/ns3.json")"
echo "ok: net status: KMs down, gateways answering; gateway B stopped shows down"

# ---- another pool cap at KM A: Status follows the KM ----
# (with KM B down: the two ends' pools then differ, which is no concern
# of this check)
sed "/^\[A_B\]$/a pool_max_bytes = 1048576" "$CFG" >"$TMP/cap.cnf"
restart_km A "$TMP/cap.cnf"
# the gateway's Ak client backs off a KM it found down (up to 2 s here)
st2_ok() {
	call st2 alice "$GW_A/$K/bob/status"
	[ "$(code st2)" = 200 ]
}
wait_for 10 st2_ok || fail "st2: HTTP $(code st2) $(body st2)"
status A >"$TMP/kmA2.json" || fail "no status from KM A"
[ "$(jq '.links[] | select(.link == "A_B") | .out_max' "$TMP/kmA2.json")" = 524288 ] ||
	fail "KM A does not report its new cap: $(cat "$TMP/kmA2.json")"
[ "$(jq .max_key_count "$TMP/st2.json")" = $((524288 / 32)) ] &&
	[ "$(jq .max_key_count "$TMP/st.json")" != $((524288 / 32)) ] ||
	fail "max_key_count did not follow KM A's cap: $(body st2)"
jq -e '.stored_key_count <= .max_key_count' "$TMP/st2.json" >/dev/null ||
	fail "st2: $(body st2)"
echo "ok: KM A restarted with a 1 MiB pool: max_key_count $(jq .max_key_count "$TMP/st2.json")"
