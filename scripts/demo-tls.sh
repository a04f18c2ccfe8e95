#!/bin/bash
# scripts/demo-tls.sh DIR - the demo's HTTPS material (scripts/demo.sh runs it).
#
# Makes, in DIR (never in the repository: `make demo` uses demo-tls/, which
# git ignores), a local test CA and a certificate for localhost and
# 127.0.0.1 signed by it, both ECDSA P-256:
#   DIR/ca.pem          the CA certificate: what a browser or curl is told to trust
#   DIR/ca.key          its key (0600)
#   DIR/localhost.pem   certificate, CA certificate (the chain) and key, the
#                       single file `bind ... tls crt` takes
# An existing CA is kept, so a browser that trusts it keeps trusting the
# demo after a restart; the localhost certificate is made again when it is
# missing, expires within 30 days, or was not signed by that CA.
#
# The CA can only vouch for localhost: its nameConstraints (RFC 5280
# 4.2.1.10, critical) permit the DNS name localhost and the address
# 127.0.0.1 alone, so importing it into a browser does not let whoever
# reads ca.key impersonate any other site. Prints nothing on success unless
# it made something; exit status non-zero when openssl fails.
set -eu
dir=${1:?usage: demo-tls.sh DIR}
umask 077
mkdir -p "$dir"
ca="$dir/ca.pem" cakey="$dir/ca.key" crt="$dir/localhost.pem"

if [ ! -s "$ca" ] || [ ! -s "$cakey" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$cakey" -out "$ca" -days 3650 -sha256 \
		-subj "/O=bollard demo/CN=bollard demo local CA ($(hostname))" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "nameConstraints=critical,permitted;DNS:localhost,permitted;IP:127.0.0.1/255.255.255.255" \
		2>/dev/null
	chmod 0644 "$ca"
	rm -f "$crt"
	echo "bollard demo: made a local test CA: $ca"
fi

if [ -s "$crt" ] && openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 &&
   openssl verify -CAfile "$ca" "$crt" >/dev/null 2>&1; then
	exit 0
fi
tmp=$(mktemp -d "$dir/.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$tmp/key.pem" -out "$tmp/req.pem" -subj "/CN=localhost" 2>/dev/null
# 397 days: the longest validity browsers accept for a server certificate
printf '%s\n' "basicConstraints=critical,CA:FALSE" \
	"keyUsage=critical,digitalSignature" \
	"extendedKeyUsage=serverAuth" \
	"subjectAltName=DNS:localhost,IP:127.0.0.1" > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/req.pem" -CA "$ca" -CAkey "$cakey" -CAcreateserial \
	-CAserial "$tmp/ca.srl" -days 397 -sha256 -extfile "$tmp/ext.cnf" \
	-out "$tmp/crt.pem" 2>/dev/null
cat "$tmp/crt.pem" "$ca" "$tmp/key.pem" > "$tmp/localhost.pem"
mv "$tmp/localhost.pem" "$crt"
echo "bollard demo: made a certificate for localhost and 127.0.0.1 signed by it: $crt"
