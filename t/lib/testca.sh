#!/bin/bash
# t/lib/testca.sh: a test CA (EC P-256) and server certificates for the
# federation tests, made with openssl.
#
#   t/lib/testca.sh DIR [--no-xmppaddr] DOMAIN...
#
# Makes DIR/ca.pem (the CA certificate: the trust anchor, --trust) and
# DIR/ca.key, and for each DOMAIN DIR/DOMAIN.pem (the certificate, signed by
# the CA) and DIR/DOMAIN.key, with:
#   subjectAltName = DNS:DOMAIN, otherName id-on-xmppAddr (1.3.6.1.5.5.7.8.5)
#                    UTF8String DOMAIN (RFC 6120 13.7.1.4)
#   extendedKeyUsage = serverAuth, clientAuth (a server's certificate is also
#                    its client certificate on outbound s2s streams)
# --no-xmppaddr: the certificates have the dNSName only (ejabberd 23.01
# fails to verify a peer's certificate that has an xmppAddr).
# An existing DIR/ca.pem is reused (certificates can be added later).
# Prints nothing on success; on failure, openssl's output and status 1.
set -u
[ $# -ge 2 ] || { echo "usage: $0 DIR [--no-xmppaddr] DOMAIN..." >&2; exit 2; }
dir=$1
shift
xmppaddr=1
[ "$1" = --no-xmppaddr ] && { xmppaddr=0; shift; }
mkdir -p "$dir" || exit 1
log=$dir/testca.log
fail() { cat "$log" >&2; echo "testca.sh: $*" >&2; exit 1; }

if [ ! -s "$dir/ca.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 -subj "/CN=xedge federation test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" >"$log" 2>&1 || fail "CA"
	chmod 600 "$dir/ca.key"
fi
for d in "$@"; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$d.key" -out "$dir/$d.csr" -subj "/CN=$d" >>"$log" 2>&1 || fail "key for $d"
	chmod 600 "$dir/$d.key"
	cat >"$dir/$d.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	if [ $xmppaddr = 1 ]; then
		echo "subjectAltName = DNS:$d,otherName:1.3.6.1.5.5.7.8.5;UTF8:$d" >>"$dir/$d.ext"
	else
		echo "subjectAltName = DNS:$d" >>"$dir/$d.ext"
	fi
	openssl x509 -req -in "$dir/$d.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
		-CAcreateserial -days 3650 -extfile "$dir/$d.ext" -out "$dir/$d.pem" >>"$log" 2>&1 ||
		fail "certificate for $d"
	openssl verify -CAfile "$dir/ca.pem" -purpose sslserver "$dir/$d.pem" >>"$log" 2>&1 ||
		fail "$d.pem does not verify against ca.pem"
	rm -f "$dir/$d.csr"
done
exit 0
