# The central controller over TLS (Q.4160 I.5b and I.4b): a line
# N1 - N2 - N3 - N4 with alice at N1 and dave at N4, every Kx and the
# central controller's Ck on tls+tcp:// (loopback), certificates made here
# (the controller's subject CN is [qkdn] ctl_name, "controller"):
#  1. I.5b: alice gets keys for dave, relayed over three hops that the
#     central controller routed over TLS; dave fetches each once: equal;
#  2. I.4b: `qkdn relay reserve` (the CLI with the controller's
#     certificate) has the controller order over TLS a reservation at N1,
#     its relay from N2 and its allocation: equal at both ends;
#  3. a KM takes the scheme's orders over TLS from the controller's
#     certificate only: N2's and alice's are refused (not_authorised) and
#     change nothing; the controller's is served (then released);
#  4. the controller takes a link-state report over TLS only from the
#     certificate of the node it reports on: N2's report in N1's name is
#     refused, and the route stays;
#  5. the KMs check the controller's name: N1 restarted with a ctl_name
#     that the controller's certificate does not carry fails its relays
#     (the controller unreachable), while its direct keys still flow.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN/qkdn-controller" ] || fail "no $BIN/qkdn-controller"

PKI=$TMP/pki
"$BIN/qkdn-certs" "$PKI" node N1 N2 N3 N4 controller sae alice dave \
	>/dev/null || fail "qkdn-certs"
line_net centralized 4 alice:N1 dave:N4 bob:N2
CK="tls+tcp://127.0.0.1:$(free_port)"
awk -v pki="$PKI" -v ck="$CK" '
	{ sub(/^kx = tcp:/, "kx = tls+tcp:") }
	{ print }
	/^\[qkdn\]$/ {
		print "ca = " pki "/ca.pem"
		print "ck = " ck
		print "ctl_cert = " pki "/controller.pem"
		print "ctl_key = " pki "/controller.key"
	}
	/^\[N[0-9]\]$/ {
		n = substr($0, 2, length($0) - 2)
		print "cert = " pki "/" n ".pem"
		print "key = " pki "/" n ".key"
	}' "$CFG" >"$TMP/tls.cnf"
mv "$TMP/tls.cnf" "$CFG"
grep -q "^kx = tls+tcp://" "$CFG" && grep -q "^ck = tls+tcp://" "$CFG" ||
	fail "the network file is not over TLS: $(cat "$CFG")"
net_up

ak() { echo "ipc://$RUN/$1.ak"; }
relay() { status "$1" | jq -e ".relay.$2"; }
ctl() { "$QKDN" status --config "$CFG" --run-dir "$RUN" --controller --json |
	jq -e ".$1"; }
wait_for 20 "$QKDN" route --from N1 --to N4 --bytes 20000 --config "$CFG" \
	--run-dir "$RUN" || fail "no route N1 -> N4 over the TLS controller"

# 1. I.5b over TLS
"$QKDN" key get --km "$(ak N1)" --sae alice --to dave --count 10 \
	>"$TMP/alice" 2>"$TMP/err" || fail "alice's relayed keys: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/alice")" = 10 ] || fail "alice got $(wc -l <"$TMP/alice") keys"
"$QKDN" key get --km "$(ak N4)" --sae dave \
	--ids-from "$TMP/alice" >"$TMP/dave" ||
	fail "dave could not fetch alice's keys"
cmp -s "$TMP/alice" "$TMP/dave" || fail "relayed keys differ"
[ "$(relay N1 completed)" = 1 ] && [ "$(ctl relay_req_notifs)" -ge 1 ] ||
	fail "I.5b counters: N1 $(status N1 | jq -c .relay), ctl $(ctl .)"
echo "ok: I.5b over TLS: 10 keys relayed N1 -> N4, routed by the central controller"

# 2. I.4b over TLS
"$QKDN" relay reserve --config "$CFG" --run-dir "$RUN" --from N1 --to N4 \
	--sae alice --dst-sae dave --count 3 --json >"$TMP/res.json" ||
	fail "relay reserve over TLS: $(cat "$TMP/res.json")"
[ "$(jq '.ids | length' "$TMP/res.json")" = 3 ] ||
	fail "expected 3 IDs: $(cat "$TMP/res.json")"
for id in $(jq -r '.ids[]' "$TMP/res.json"); do
	"$QKDN" key get --km "$(ak N1)" --sae alice --id "$id" >"$TMP/a" ||
		fail "alice could not fetch $id at N1"
	"$QKDN" key get --km "$(ak N4)" --sae dave --id "$id" >"$TMP/d" ||
		fail "dave could not fetch $id at N4"
	[ "$(cat "$TMP/a")" = "$(cat "$TMP/d")" ] || fail "key $id differs"
done
[ "$(ctl reservations)" = 1 ] && [ "$(ctl allocations)" = 1 ] ||
	fail "controller counters: $(ctl .)"
echo "ok: I.4b over TLS: 3 keys reserved, relayed and allocated, equal at both ends"

# 3. orders over TLS: the controller's certificate only
order() { # order CERT VERB ARGS...: ck_send to N1's Kx with CERT
	local cert=$1
	shift
	CK_SEND_CA="$PKI/ca.pem" CK_SEND_CERT="$PKI/$cert.pem" \
		CK_SEND_KEY="$PKI/$cert.key" CK_SEND_PEER=N1 \
		"$BIN/ck_send" "$(kx_url N1)" "$@"
}
before=$(status N1 | jq -c '[.relay.reservations, .links[0].out]')
[ "$(jq '.[1] > 0' <<<"$before")" = true ] || fail "N1's status: $before"
# the links are paused: the out bytes move only when key is taken
"$QKDN" link pause L12 --config "$CFG" --run-dir "$RUN" >/dev/null ||
	fail "pause L12"
before=$(status N1 | jq -c '[.relay.reservations, .links[0].out]')
resid=$(cat /proc/sys/kernel/random/uuid)
for cert in N2 alice; do
	for o in "reserve $resid N4 N2 2 256 3000" "alloc $resid N4 alice dave" \
		"release $resid"; do
		# shellcheck disable=SC2086 # the order's words
		out=$(order $cert $o) || fail "ck_send ${o%% *}: $out"
		[ "$(head -n 1 <<<"$out")" = not_authorised ] ||
			fail "N1 took a ${o%% *} over TLS from $cert's certificate: $out"
	done
done
[ "$(status N1 | jq -c '[.relay.reservations, .links[0].out]')" = "$before" ] ||
	fail "refused orders changed N1: $before -> $(status N1 | jq -c '[.relay.reservations, .links[0].out]')"
out=$(order controller reserve "$resid" N4 N2 2 256 3000) ||
	fail "ck_send reserve with the controller's certificate: $out"
[ "$(head -n 1 <<<"$out")" = ok ] && [ "$(wc -l <<<"$out")" = 3 ] ||
	fail "the controller's reservation over TLS: $out"
out=$(order controller release "$resid") || fail "ck_send release: $out"
[ "$out" = ok ] || fail "the controller's release over TLS: $out"
echo "ok: over TLS, N1 refuses orders from N2's and alice's certificates and serves the controller's"

# 4. link state over TLS: only the node's own certificate
out=$(CK_SEND_CA="$PKI/ca.pem" CK_SEND_CERT="$PKI/N2.pem" \
	CK_SEND_KEY="$PKI/N2.key" CK_SEND_PEER=controller \
	"$BIN/ck_send" "$CK" linkstate N1 999999999) ||
	fail "ck_send link state to the controller: $out"
[ "$out" = not_authorised ] ||
	fail "the controller took N1's link state from N2's certificate: $out"
"$QKDN" route --from N1 --to N4 --config "$CFG" --run-dir "$RUN" --json \
	>"$TMP/route" && [ "$(jq -c '.routes[0]' "$TMP/route")" = '["N1","N2","N3","N4"]' ] ||
	fail "the route changed after N2's report in N1's name: $(cat "$TMP/route")"
echo "ok: the controller refuses a link-state report over TLS from another node's certificate"

# 5. a KM checks the controller's name
sed 's/^\[qkdn\]$/[qkdn]\nctl_name = not-the-controller/' "$CFG" >"$TMP/wrong.cnf"
restart_km N1 "$TMP/wrong.cnf"
"$QKDN" key get --km "$(ak N1)" --sae alice --to dave --json \
	>"$TMP/norelay.json" 2>/dev/null && fail "a relay went through a controller of the wrong name"
[ "$(jq -r .error.name "$TMP/norelay.json")" = unreachable ] ||
	fail "relay with the wrong controller name: $(cat "$TMP/norelay.json")"
"$QKDN" key get --km "$(ak N1)" --sae alice --to bob >"$TMP/direct" ||
	fail "N1's direct keys stopped with its controller unreachable"
echo "ok: N1 refuses a controller whose certificate does not carry ctl_name, and still serves direct keys"
