#!/usr/bin/env bash
# qkdn-etsi014-certs: the test PKI of the ETSI 014 gateways, which
# `qkdn net up` makes in RUN_DIR/etsi014-pki when the network file names
# no gateway certificates (docs/etsi014.md).
#
#   qkdn-etsi014-certs DIR gw NAME HOST [gw NAME HOST...] sae ID...
#
# DIR/ca.pem, ca.key  the CA (made by qkdn-certs, next to this script)
# DIR/ID.pem, ID.key  per SAE a client certificate (CN = SAE ID, EKU
#                     clientAuth), by qkdn-certs
# DIR/NAME.pem, .key  per gateway a server certificate, CN = NAME, SAN the
#                     gateway's HOST (IP or DNS) and localhost/127.0.0.1,
#                     EKU serverAuth and clientAuth (it is also the
#                     gateway's Ak client certificate on a tls+tcp:// Ak)
# Files that exist are kept, so clients' copies stay valid across runs.
set -euo pipefail
die() {
	echo "qkdn-etsi014-certs: $*" >&2
	exit 1
}
[ $# -ge 1 ] || die "usage: DIR gw NAME HOST... sae ID..."
DIR=$1
shift
GWS=()
SAES=()
while [ $# -gt 0 ]; do
	case $1 in
	gw)
		[ $# -ge 3 ] || die "gw takes NAME HOST"
		GWS+=("$2" "$3")
		shift 3
		;;
	sae)
		shift
		SAES+=("$@")
		break
		;;
	*) die "unexpected '$1'" ;;
	esac
done
umask 077
mkdir -p "$DIR"
export OPENSSL_CONF=/dev/null
missing=()
for id in "${SAES[@]}"; do
	[ -f "$DIR/$id.pem" ] && [ -f "$DIR/$id.key" ] || missing+=("$id")
done
if [ ! -f "$DIR/ca.pem" ] || [ ${#missing[@]} -gt 0 ]; then
	args=()
	[ ${#missing[@]} -eq 0 ] || args=(sae "${missing[@]}")
	"$(dirname "$0")/qkdn-certs" "$DIR" "${args[@]}" >/dev/null
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gw-certs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
for ((i = 0; i < ${#GWS[@]}; i += 2)); do
	name=${GWS[$i]}
	host=${GWS[$((i + 1))]}
	[ ! -f "$DIR/$name.pem" ] || [ ! -f "$DIR/$name.key" ] || continue
	if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then
		san="IP:$host"
	else
		san="DNS:$host"
	fi
	[ "$host" = 127.0.0.1 ] || san="$san,IP:127.0.0.1"
	[ "$host" = localhost ] || san="$san,DNS:localhost"
	cat >"$WORK/ext" <<EXT
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$WORK/gw.key" -out "$WORK/gw.csr" -subj "/CN=$name" \
		2>"$WORK/log" || { cat "$WORK/log" >&2; die "key for $name"; }
	openssl x509 -req -in "$WORK/gw.csr" -CA "$DIR/ca.pem" \
		-CAkey "$DIR/ca.key" -CAcreateserial -days 365 -sha256 \
		-extfile "$WORK/ext" -out "$WORK/gw.pem" 2>"$WORK/log" ||
		{ cat "$WORK/log" >&2; die "certificate for $name"; }
	chmod 0644 "$WORK/gw.pem"
	mv "$WORK/gw.key" "$DIR/$name.key"
	mv "$WORK/gw.pem" "$DIR/$name.pem"
done
