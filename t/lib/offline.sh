# t/lib/offline.sh: sourced by the tests that run xedge -t or xedgectl
# without a daemon (conf.t, xedgectl.t, xedgectl-tokens.t, pg-store.t).
#
#   offline_keys DIR   DIR/cert.pem and DIR/key.pem, a self-signed P-256
#                      certificate for example.test, and DIR/secret, a
#                      pool's secret
#   offline_conf DIR   offline_keys, and DIR/xedge.conf: a user store in
#                      DIR/users, example.test with that certificate, one
#                      listener and a pool of one server (never started)
# shellcheck shell=bash

offline_keys() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=example.test -addext subjectAltName=DNS:example.test \
		-keyout "$1/key.pem" -out "$1/cert.pem" >/dev/null 2>&1
	openssl rand -hex 32 >"$1/secret"
}

offline_conf() {
	offline_keys "$1"
	cat >"$1/xedge.conf" <<CONF
log_level = "info";
user_store = { path = "$1/users"; };
listeners = ( { kind = "starttls"; address = "127.0.0.1"; port = 5222; } );
domains = ( { name = "example.test"; certificate = "$1/cert.pem"; key = "$1/key.pem"; pool = "main"; } );
pools = ( { name = "main"; secret_file = "$1/secret";
            servers = ( { name = "p1"; address = "127.0.0.1"; port = 15222; } ); } );
CONF
}
