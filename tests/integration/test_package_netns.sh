#!/usr/bin/env bash
# docs/deploy.md, from the installed packages alone: three hosts (one
# network namespace per node, A - B - C), certificates from the installed
# qkdn-certs, /etc/qkdn/qkdn.cnf from the installed three-host.cnf with Kx
# and Cx over tls+tcp://, and each daemon started with its unit's ExecStart= as
# the unit's user qkdn (stores under /var/lib/qkdn, sockets under
# /run/qkdn). Asserts: every KM and controller runs as qkdn from
# /usr/sbin, its store is in /var/lib/qkdn; every controller sees both
# links; a key for carol taken at A is relayed through B and fetched by
# ID at C (the same bytes); stock openssl s_server (alice, on A's host)
# and s_client (bob, on B's host) negotiate x25519_qkd through the
# installed provider with no OPENSSL_MODULES, on a key both KMs count as
# supplied; SIGTERM stops every daemon with status 0 (netns_topo.sh).
source "$QKDN_SRC/tests/integration/lib.sh"
source "$QKDN_SRC/tests/integration/package_lib.sh"

pkg_preflight
pkg_build
pkg_install
export PATH="/usr/sbin:/usr/bin:$PATH"
QKDN=/usr/bin/qkdn
source "$QKDN_SRC/tests/integration/netns_topo.sh"
RUN=/run/qkdn # the units' RuntimeDirectory; fail() shows its logs
TOPO_MODE=distributed

topo_up "A B C" "A-B B-C"

# ---- keys and certificates (deploy.md, step 2) ----
qkdn-certs "$TMP/pki" node A B C sae alice bob carol >"$TMP/certs.out" 2>&1 ||
	fail "qkdn-certs: $(cat "$TMP/certs.out")"
install -d -m 0750 -o root -g qkdn /etc/qkdn/pki
install -m 0644 "$TMP/pki/ca.pem" /etc/qkdn/pki/
for n in A B C; do
	install -m 0644 "$TMP/pki/$n.pem" /etc/qkdn/pki/
	install -m 0600 -o qkdn -g qkdn "$TMP/pki/$n.key" /etc/qkdn/pki/
done

# ---- the network file (step 3): the example, with these hosts' addresses
# and the applications' uid (root here) ----
sed -e "s/10\.0\.0\.1/$(node_ip A)/; s/10\.0\.0\.2/$(node_ip B)/" \
	-e "s/10\.0\.0\.3/$(node_ip C)/; s/^uid = 1001$/uid = 0/" \
	/usr/share/doc/qkdn-km/examples/three-host.cnf >"$TMP/qkdn.cnf"
install -m 0640 -o root -g qkdn "$TMP/qkdn.cnf" /etc/qkdn/qkdn.cnf
grep -q '^kx = tls+tcp://' /etc/qkdn/qkdn.cnf || fail "Kx is not tls+tcp://"

# ---- the units (step 4), as systemd would start them: the directories
# its RuntimeDirectory= and StateDirectory= make, then ExecStart= as
# User=qkdn ----
install -d -m 0755 -o qkdn -g qkdn /run/qkdn
[ "$(stat -c '%U %a' /var/lib/qkdn)" = "qkdn 700" ] ||
	fail "/var/lib/qkdn: $(stat -c '%U %a' /var/lib/qkdn)"
start_unit() { # NODE|- LOG UNIT [INSTANCE]
	local cmd
	mapfile -t cmd < <(unit_cmd "$3" "${4:-}")
	topo_spawn "$1" "$RUN/$2" "${AS_UNIT_USER[@]}" "${cmd[@]}"
}
start_unit - qkdsim.log qkdn-qkdsim.service
wait_for 10 test -S /run/qkdn/sim.ctl || fail "the emulator did not start"
for n in A B C; do start_unit "$n" "ctl-$n.log" qkdn-controller@.service "$n"; done
for n in A B C; do
	wait_for 10 topo_ctl_answers "ipc:///run/qkdn/$n.ck" ||
		fail "the controller of $n does not answer"
done
for n in A B C; do start_unit "$n" "km-$n.log" qkdn-km@.service "$n"; done

# ---- checking it works (step 6) ----
for n in A B C; do
	wait_for 30 topo_links_up "$n" ||
		fail "controller $n: links not up: $(ctl_status "$n" 2>&1)"
	wait_for 30 topo_km_filled "$n" ||
		fail "km $n: links not filled: $("$QKDN" status --km "$(topo_km "$n")" 2>&1)"
done
for pid in $(pgrep -f '^/usr/sbin/qkdn-(km|controller) --config /etc/qkdn/qkdn.cnf'); do
	[ "$(stat -c %U "/proc/$pid")" = qkdn ] ||
		fail "pid $pid runs as $(stat -c %U "/proc/$pid"), not qkdn"
done
[ "$(pgrep -c -u qkdn -f '^/usr/sbin/qkdn-km ')" = 3 ] ||
	fail "not three KMs as qkdn: $(pgrep -a -u qkdn)"
for n in A B C; do
	[ "$(stat -c %U "/var/lib/qkdn/$n.db")" = qkdn ] ||
		fail "no store of $n owned by qkdn in /var/lib/qkdn"
done

"$QKDN" key get --km ipc:///run/qkdn/A.ak --sae alice --to carol --json \
	>"$TMP/key.json" || fail "key get alice -> carol at A"
id=$(jq -r '.keys[0].id' "$TMP/key.json")
key=$(jq -r '.keys[0].key' "$TMP/key.json")
"$QKDN" key get --km ipc:///run/qkdn/C.ak --sae carol --id "$id" --json \
	>"$TMP/got.json" || fail "key get by ID at C"
[ "$(jq -r '.keys[0].key' "$TMP/got.json")" = "$key" ] ||
	fail "C gave another key for $id"
[ "$(status_field B .relay.forwarded)" -ge 1 ] ||
	fail "B forwarded nothing: $(status B)"

# ---- the provider on the application hosts (step 5) ----
supplied_a=$(status_field A .supplied)
supplied_b=$(status_field B .supplied)
topo_spawn A "$TMP/s_server.out" env -u OPENSSL_MODULES \
	OPENSSL_CONF=/etc/ssl/openssl.cnf.d/qkdn.cnf \
	QKDN_KM=ipc:///run/qkdn/A.ak QKDN_SAE=alice \
	openssl s_server -accept "$(node_ip A):4433" -cert "$TMP/pki/A.pem" \
	-key "$TMP/pki/A.key" -tls1_3 -rev -groups x25519_qkd
srv=$TOPO_PID
deadline=$(($(date +%s) + 10))
until topo_listening A 4433; do
	kill -0 "$srv" 2>/dev/null || fail "s_server: $(cat "$TMP/s_server.out")"
	[ "$(date +%s)" -lt "$deadline" ] || fail "s_server does not listen"
	sleep 0.05
done
printf 'hello over QKD\nCLOSE\n' | in_node B env -u OPENSSL_MODULES \
	OPENSSL_CONF=/etc/ssl/openssl.cnf.d/qkdn.cnf \
	QKDN_KM=ipc:///run/qkdn/B.ak QKDN_SAE=bob timeout 20 \
	openssl s_client -connect "$(node_ip A):4433" -groups x25519_qkd \
	-CAfile "$TMP/pki/ca.pem" -verify_return_error -ign_eof \
	>"$TMP/s_client.out" 2>&1 || fail "s_client: $(tail -n 20 "$TMP/s_client.out")"
grep -q 'DKQ revo olleh' "$TMP/s_client.out" ||
	fail "no reply over TLS: $(tail -n 20 "$TMP/s_client.out")"
grep -q 'Verify return code: 0' "$TMP/s_client.out" ||
	fail "server not verified: $(grep Verify "$TMP/s_client.out")"
[ "$(status_field A .supplied)" -gt "$supplied_a" ] ||
	fail "KM A supplied no key to s_server"
[ "$(status_field B .supplied)" -gt "$supplied_b" ] ||
	fail "KM B supplied no key to s_client"
topo_reap "$srv" 2>/dev/null || true
echo "OK"
