#!/usr/bin/env bash
# make-certs.sh: the certificates of a qkdn network (docs/tls.md), made
# with the openssl command line alone (Debian 12, OpenSSL 3.0).
#
#   scripts/make-certs.sh DIR [--days N] [--ca-dir CADIR] [--expired]
#                         [node ID...] [sae ID...]
#
# DIR/ca.pem, DIR/ca.key  the network's CA: self-signed ECDSA P-256,
#                         basicConstraints CA:TRUE pathlen:0 (it signs
#                         leaves only), keyUsage keyCertSign, cRLSign,
#                         valid 3650 days. Made only if DIR/ca.key does not
#                         exist; otherwise the existing CA signs. With no
#                         IDs the script makes just the CA.
# DIR/ID.pem, DIR/ID.key  one ECDSA P-256 key and certificate per ID,
#                         signed by the CA, subject CN=ID, keyUsage
#                         digitalSignature, basicConstraints CA:FALSE:
#                           after `node`: EKU serverAuth + clientAuth,
#                                         SAN DNS:ID (a KM serves and dials)
#                           after `sae`:  EKU clientAuth only (an SAE
#                                         certificate can never serve)
#                         An existing ID.pem/ID.key is replaced (a new key:
#                         that is how to rotate one; restart the KM after).
#
# Options (before the first `node`/`sae`):
#   --days N       leaf certificates valid N days from an hour ago (the
#                  hour absorbs clock skew between hosts); default 365
#   --ca-dir CADIR sign with CADIR/ca.pem + CADIR/ca.key (made there if
#                  missing) instead of DIR's CA; DIR gets only the leaves.
#                  For tests: a certificate from another CA, or a second
#                  set of leaves (expired ones) from the same CA.
#   --expired      leaf certificates that expired yesterday (valid from
#                  N+1 days ago to 1 day ago), otherwise identical; for
#                  tests (`openssl verify` says "certificate has expired")
#
# IDs are node or SAE IDs as in the network file: 1..63 of [A-Za-z0-9._-];
# "ca" is refused (it would overwrite the CA) and so is an ID given twice.
# Keys are written mode 0600, certificates 0644. The system openssl.cnf is
# not read (it may load the qkdn provider), so the result does not depend
# on the host's OpenSSL configuration. Prints one line per file made.
#
# Examples:
#   scripts/make-certs.sh /etc/qkdn/pki node A B sae alice bob
#   scripts/make-certs.sh "$T/pki" --days 2 node A B sae alice bob
#   scripts/make-certs.sh "$T/rogue" sae mallory          # another CA
#   scripts/make-certs.sh "$T/old" --ca-dir "$T/pki" --expired sae bob
set -euo pipefail

usage() {
	sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//' >&2
	echo "see the header of $0" >&2
	exit 2
}
die() {
	echo "make-certs.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || usage
case $1 in -h | --help | -*) usage ;; esac
DIR=$1
shift
DAYS=365
CADIR=""
EXPIRED=0
while [ $# -gt 0 ]; do
	case $1 in
	--days)
		[ $# -ge 2 ] || usage
		[[ $2 =~ ^[1-9][0-9]{0,4}$ ]] || die "--days: '$2' is not 1..99999"
		DAYS=$2
		shift 2
		;;
	--ca-dir)
		[ $# -ge 2 ] || usage
		CADIR=$2
		shift 2
		;;
	--expired)
		EXPIRED=1
		shift
		;;
	-h | --help) usage ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
CADIR=${CADIR:-$DIR}

# what to make: "node ID" / "sae ID" pairs, checked before anything is made
KINDS=()
IDS=()
kind=""
declare -A seen=()
for a in "$@"; do
	case $a in
	node | sae) kind=$a ;;
	-*) die "option $a after the first node/sae" ;;
	*)
		[ -n "$kind" ] || die "'$a': say node or sae before the IDs"
		[[ $a =~ ^[A-Za-z0-9._-]{1,63}$ ]] ||
			die "'$a': an ID is 1..63 of letters, digits, '.', '_', '-'"
		[ "$a" != ca ] || die "'ca' cannot be an ID (DIR/ca.pem is the CA)"
		# node and SAE IDs share one namespace (the network file says so)
		[ -z "${seen[$a]:-}" ] || die "'$a' given twice"
		seen[$a]=1
		KINDS+=("$kind")
		IDS+=("$a")
		;;
	esac
done

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
# keys are born private: no window in which a key file is world-readable
umask 077
mkdir -p "$DIR" "$CADIR"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-certs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/openssl.log"
# run CMD...: openssl, quiet unless it fails (then its output, and stop)
run() {
	"$@" >>"$LOG" 2>&1 || {
		cat "$LOG" >&2
		die "failed: $*"
	}
}
export OPENSSL_CONF=/dev/null
EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

# The CA, once. Its CN carries a random tag: two CAs (the network's and a
# test's rogue one) never share a subject, so a certificate from the wrong
# CA fails as "unable to get local issuer certificate", not as a
# signature mismatch against a namesake.
if [ -e "$CADIR/ca.key" ] || [ -e "$CADIR/ca.pem" ]; then
	if [ ! -f "$CADIR/ca.key" ] || [ ! -f "$CADIR/ca.pem" ]; then
		die "$CADIR has only one of ca.pem and ca.key"
	fi
else
	run openssl req -x509 "${EC[@]}" -days 3650 \
		-keyout "$WORK/ca.key" -out "$WORK/ca.pem" \
		-subj "/CN=qkdn CA $(openssl rand -hex 4)" \
		-addext basicConstraints=critical,CA:TRUE,pathlen:0 \
		-addext keyUsage=critical,keyCertSign,cRLSign \
		-addext subjectKeyIdentifier=hash
	chmod 0644 "$WORK/ca.pem"
	mv "$WORK/ca.key" "$CADIR/ca.key"
	mv "$WORK/ca.pem" "$CADIR/ca.pem"
	echo "$CADIR/ca.pem: new CA $(openssl x509 -in "$CADIR/ca.pem" -noout -subject)"
fi

# Leaves are signed with `openssl ca`, not `openssl x509 -req`: only `ca`
# takes explicit start and end dates in OpenSSL 3.0 (x509 -req cannot
# backdate), and one path for good and expired certificates keeps them
# identical but for the dates. Its database is a throwaway in $WORK.
: >"$WORK/index.txt"
cat >"$WORK/ca.cnf" <<CNF
[ca]
default_ca = mk
[mk]
database = $WORK/index.txt
new_certs_dir = $WORK
serial = $WORK/serial
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
[pol]
commonName = supplied
CNF

stamp() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
if [ "$EXPIRED" = 1 ]; then
	START=$(stamp "-$((DAYS + 1)) days")
	END=$(stamp "-1 day")
else
	START=$(stamp "-1 hour")
	END=$(stamp "+$DAYS days")
fi

for i in "${!IDS[@]}"; do
	id=${IDS[$i]}
	kind=${KINDS[$i]}
	# digitalSignature is all an ECDSA key does in TLS (1.2 ECDHE or 1.3)
	{
		echo "basicConstraints = critical,CA:FALSE"
		echo "keyUsage = critical,digitalSignature"
		echo "subjectKeyIdentifier = hash"
		echo "authorityKeyIdentifier = keyid"
		if [ "$kind" = node ]; then
			echo "extendedKeyUsage = serverAuth,clientAuth"
			echo "subjectAltName = DNS:$id"
		else
			echo "extendedKeyUsage = clientAuth"
		fi
	} >"$WORK/$id.ext"
	run openssl req -new "${EC[@]}" -keyout "$WORK/$id.key" \
		-out "$WORK/$id.csr" -subj "/CN=$id"
	run openssl ca -batch -notext -rand_serial -config "$WORK/ca.cnf" \
		-cert "$CADIR/ca.pem" -keyfile "$CADIR/ca.key" \
		-startdate "$START" -enddate "$END" -extfile "$WORK/$id.ext" \
		-in "$WORK/$id.csr" -out "$WORK/$id.pem"
	chmod 0644 "$WORK/$id.pem"
	# key and certificate replace the old pair only once both exist
	mv "$WORK/$id.key" "$DIR/$id.key"
	mv "$WORK/$id.pem" "$DIR/$id.pem"
	echo "$DIR/$id.pem: $kind $id, $(openssl x509 -in "$DIR/$id.pem" -noout -enddate)"
done
