# Shared set-up of the ETSI 014 tests (test_etsi014*.sh), on top of lib.sh
# (or tls_lib.sh, sourced first): the two-node network with a gateway on
# each node (its test PKI made by `qkdn net up`) and `call`, a curl with
# an SAE's client certificate.
[ -n "${QKDN:-}" ] || source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PKI="$RUN/etsi014-pki"
GW_A="https://127.0.0.1:$(free_port)"
GW_B="https://127.0.0.1:$(free_port)"

# etsi014_net [EXTRA_SAES] [EXTRA_B_LINES] [EXTRA_A_LINES] [KEY_TTL]:
# write_net plus the gateways; an extra line goes into the node's section
# (e.g. "etsi014_stock = 0"), KEY_TTL into both (default 600)
etsi014_net() {
	write_net 8000000 "" "${4:-600}" "" "${1:-}"
	sed -i -e "/^\[A\]$/a etsi014 = $GW_A${3:+\\n$3}" \
		-e "/^\[B\]$/a etsi014 = $GW_B${2:+\\n$2}" "$CFG"
}

# call NAME SAE URL [CURL ARGS...]: curl as SAE (its test PKI certificate)
# into $TMP/NAME.json, the HTTP status into $TMP/NAME.code
call() {
	local name=$1 sae=$2 url=$3
	shift 3
	curl -sS --cacert "$PKI/ca.pem" --cert "$PKI/$sae.pem" \
		--key "$PKI/$sae.key" -o "$TMP/$name.json" -w '%{http_code}' \
		"$@" "$url" >"$TMP/$name.code" 2>"$TMP/$name.err" ||
		echo 000 >"$TMP/$name.code"
}
code() { cat "$TMP/$1.code"; }
body() { cat "$TMP/$1.json"; }
# expect NAME CODE: the call answered with that HTTP status
expect() {
	[ "$(code "$1")" = "$2" ] ||
		fail "$1: HTTP $(code "$1"), want $2: $(body "$1" 2>/dev/null) $(cat "$TMP/$1.err")"
}
# expect_error NAME CODE MESSAGE: an Error object with that message
expect_error() {
	expect "$1" "$2"
	[ "$(jq -r .message "$TMP/$1.json")" = "$3" ] ||
		fail "$1: message $(body "$1"), want '$3'"
	jq -e '.details == null or (.details | type == "array")' \
		"$TMP/$1.json" >/dev/null || fail "$1: details not an array"
}
