# A TLS 1.3 handshake through the provider (stock openssl s_server as
# alice at KM A, s_client as bob at KM B, on the qkd group) and an ETSI 014
# client (curl: enc_keys as alice at gateway A, dec_keys as bob at gateway
# B) draw on the same KMs at once: handshakes complete while the ETSI
# pairs run, every handshake verifies and echoes, every ETSI pair gets the
# same key at both ends, and KM A supplied exactly one key per handshake
# plus one per ETSI pair (nothing lost or given twice between them).
source "$(dirname "$0")/tls_lib.sh"
source "$(dirname "$0")/etsi014_lib.sh"
# gateway A without its key stock: the stock takes keys ahead of requests
# (test_etsi014_stock.sh), and this count must be exact
etsi014_net "" "" "etsi014_stock = 0"
net_up
wait_for 10 has_out_bytes A 40000 || fail "pool of A never filled"
make_certs
ossl_conf "$TMP/server.cnf" "$(AK_A)" alice "qkd" 3000 1
ossl_conf "$TMP/client.cnf" "$(AK_B)" bob "qkd"
port=$(tls_port)
start_s_server server "$TMP/server.cnf" "$port"
a0=$(status_field A .supplied)

# handshakes in the background until told to stop, one line per success
: >"$TMP/hs.done"
(
	n=0
	while [ ! -e "$TMP/hs.stop" ] && [ $n -lt 200 ]; do
		n=$((n + 1))
		s_client "c$n" "$TMP/client.cnf" "$port" qkd || exit 1
		reply_ok "$TMP/c$n.out" || exit 2
		echo "$n" >>"$TMP/hs.done"
	done
) &
hs_pid=$!

# ETSI pairs until at least one handshake completed while they ran
wait_for 20 test -s "$TMP/hs.done" || fail "no handshake completed"
c0=$(wc -l <"$TMP/hs.done")
pairs=0
while [ $pairs -lt 10 ] || [ "$(wc -l <"$TMP/hs.done")" -le "$c0" ]; do
	pairs=$((pairs + 1))
	[ $pairs -le 300 ] || fail "no handshake completed during 300 ETSI pairs"
	call e alice "$GW_A/api/v1/keys/bob/enc_keys"
	expect e 200
	id=$(jq -r '.keys[0].key_ID' "$TMP/e.json")
	call d bob "$GW_B/api/v1/keys/alice/dec_keys?key_ID=$id"
	expect d 200
	[ "$(jq -c .keys "$TMP/d.json")" = "$(jq -c .keys "$TMP/e.json")" ] ||
		fail "ETSI pair $pairs: keys differ"
done
c1=$(wc -l <"$TMP/hs.done")
touch "$TMP/hs.stop"
wait "$hs_pid" || fail "a handshake failed: $(tail -n 20 "$TMP"/c*.out | tail -n 40)"
hs=$(wc -l <"$TMP/hs.done")
[ "$c1" -gt "$c0" ] || fail "no handshake overlapped the ETSI pairs"
a1=$(status_field A .supplied)
[ $((a1 - a0)) = $((hs + pairs)) ] ||
	fail "KM A supplied $((a1 - a0)), want $hs handshakes + $pairs ETSI keys"
echo "ok: $hs TLS handshakes (qkd group, $((c1 - c0)) during the ETSI pairs) and $pairs ETSI enc/dec pairs on KM A at once; KM A supplied exactly $((a1 - a0))"
