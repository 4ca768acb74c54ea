# The CLI asking a controller whose Ck is tls+tcp:// (nng has no TLS here:
# the CLI uses libqkdn's SP client for it). A line N1 - N2 - N3 with one
# controller per node, N1's on a tls+tcp:// Ck (it serves with N1's
# certificate, which N1's KM shares), Kx over TLS, the others on ipc://:
#  1. `status --config FILE --controller N1` takes the CA and N1's
#     certificate and name from the file; `status --ctl ADDR --ca --cert
#     --key --ctl-name N1` the options; `route` both ways, with the
#     bottleneck (a second call over TLS);
#  2. a wrong or missing --ctl-name, or a CA the controller's certificate
#     does not chain to, fails (1, authentication_failed) naming why;
#  3. usage errors (2): no credentials for a tls+tcp:// controller (naming
#     the missing options), TLS options for an ipc:// one, --km-name for a
#     controller, a CA file that does not exist; and an ipc:// controller
#     is still asked over nng.
#   QKDN_BIN=build QKDN_SRC=. bash tests/integration/test_cli_ctl_tls.sh
source "${QKDN_SRC:?}/tests/integration/lib.sh"
[ -x "$BIN/qkdn-controller" ] ||
	fail "$BIN/qkdn-controller is not built: net up cannot start the controllers"

# expect STATUS CMD...: run CMD, which must exit with STATUS
expect() {
	local want=$1 rc=0
	shift
	"$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	[ "$rc" = "$want" ] ||
		fail "'$*' exited $rc, not $want: $(cat "$TMP/err") $(cat "$TMP/out")"
}
# err_has TEXT: the last command's stderr holds TEXT
err_has() { grep -qF -- "$1" "$TMP/err" || fail "no '$1' in: $(cat "$TMP/err")"; }

PKI=$TMP/pki
"$BIN/qkdn-certs" "$PKI" node N1 N2 N3 >/dev/null || fail "qkdn-certs"
"$BIN/qkdn-certs" "$TMP/rogue" node N1 >/dev/null || fail "qkdn-certs (rogue)"
line_net distributed 3 alice:N1 carol:N3
CK="tls+tcp://127.0.0.1:$(free_port)"
awk -v pki="$PKI" -v ck="$CK" '
	{ sub(/^kx = tcp:/, "kx = tls+tcp:") }
	{ print }
	/^\[qkdn\]$/ { print "ca = " pki "/ca.pem" }
	/^\[N[0-9]\]$/ {
		n = substr($0, 2, length($0) - 2)
		print "cert = " pki "/" n ".pem"
		print "key = " pki "/" n ".key"
		if (n == "N1")
			print "ck = " ck
	}' "$CFG" >"$TMP/tls.cnf"
mv "$TMP/tls.cnf" "$CFG"
grep -qx "ck = $CK" "$CFG" || fail "N1's Ck is not over TLS: $(cat "$CFG")"
net_up

CONF=(--config "$CFG" --run-dir "$RUN")
# the options for N1's controller; the client's certificate is N2's: the
# controller answers status and routes to any certificate of the network
TLS=(--ctl "$CK" --ca "$PKI/ca.pem" --cert "$PKI/N2.pem" --key "$PKI/N2.key")

# ---- 1. over TLS, with the file's credentials and with the options ----
expect 0 "$QKDN" status "${CONF[@]}" --controller N1 --json
[ "$(jq -r '.node + " " + .mode' "$TMP/out")" = "N1 distributed" ] ||
	fail "status --controller N1 over TLS: $(cat "$TMP/out")"
expect 0 "$QKDN" status "${CONF[@]}" --controller N1
grep -qx "controller: N1 (distributed)" "$TMP/out" ||
	fail "status --controller N1 text: $(cat "$TMP/out")"
expect 0 "$QKDN" status "${TLS[@]}" --ctl-name N1 --json
[ "$(jq -r .node "$TMP/out")" = N1 ] ||
	fail "status --ctl over TLS: $(cat "$TMP/out")"

# both links known and N1's own reported: a route N1 -> N2 -> N3, and its
# bottleneck from a second call (STATUS_REQ) over TLS
wait_for 20 "$QKDN" route --from N1 --to N3 "${CONF[@]}" ||
	fail "no route N1 -> N3 from N1's controller over TLS: $(
		"$QKDN" status "${CONF[@]}" --controller N1 --json 2>&1)"
expect 0 "$QKDN" route --from N1 --to N3 "${CONF[@]}"
grep -qE '^N1 -> N2 -> N3 \(bottleneck [0-9]+ bytes\)$' "$TMP/out" ||
	fail "route over TLS: $(cat "$TMP/out")"
expect 0 "$QKDN" route --from N1 --to N3 "${TLS[@]}" --ctl-name N1 --json
[ "$(jq -c '.routes[0]' "$TMP/out")" = '["N1","N2","N3"]' ] ||
	fail "route --ctl over TLS: $(cat "$TMP/out")"

# ---- 2. the controller's certificate is checked ----
expect 1 "$QKDN" status "${TLS[@]}" --ctl-name N2 --json
err_has "qkdn: authentication_failed: "
err_has "names N1, expected N2 ($CK)"
[ "$(jq -r .error.name "$TMP/out")" = authentication_failed ] ||
	fail "wrong --ctl-name --json: $(cat "$TMP/out")"
# without --ctl-name the name expected is "controller" (the central one's)
expect 1 "$QKDN" status "${TLS[@]}"
err_has "names N1, expected controller"
# --ctl-name replaces the name the file gives (N1)
expect 1 "$QKDN" route --from N1 --to N3 "${CONF[@]}" --ctl-name N3
err_has "names N1, expected N3"
# a CA that did not sign N1's certificate
expect 1 "$QKDN" status --ctl "$CK" --ca "$TMP/rogue/ca.pem" \
	--cert "$TMP/rogue/N1.pem" --key "$TMP/rogue/N1.key" --ctl-name N1
err_has "certificate verify failed"

# ---- 3. usage errors, and nng for the others ----
expect 2 "$QKDN" status --ctl "$CK"
err_has "needs TLS credentials: give --ca FILE, --cert FILE, --key FILE"
[ ! -s "$TMP/out" ] || fail "usage error wrote to stdout: $(cat "$TMP/out")"
expect 2 "$QKDN" route --from N1 --to N3 --ctl "$CK" --ca "$PKI/ca.pem"
err_has "needs TLS credentials: give --cert FILE, --key FILE"
expect 2 "$QKDN" status --ctl "$CK" --ca "$TMP/none.pem" \
	--cert "$PKI/N2.pem" --key "$PKI/N2.key"
err_has "cannot load the CA $TMP/none.pem"
expect 2 "$QKDN" status --ctl "ipc://$RUN/N2.ck" --ca "$PKI/ca.pem"
err_has "are for a tls+tcp:// controller, not ipc://$RUN/N2.ck"
expect 2 "$QKDN" status "${TLS[@]}" --km-name N1
err_has "--km-name is for a KM"
expect 2 "$QKDN" status --km "ipc://$RUN/N1.ak" --ctl-name N1
err_has "--ctl-name is for a controller"
expect 0 "$QKDN" status --ctl "ipc://$RUN/N2.ck" --json
[ "$(jq -r .node "$TMP/out")" = N2 ] || fail "status --ctl ipc: $(cat "$TMP/out")"

echo "ok: qkdn CLI and a controller over TLS"
