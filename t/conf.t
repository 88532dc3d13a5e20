#!/bin/bash
# conf.t: `xedge -t -c FILE` accepts a good configuration and refuses bad
# ones with an error that names the file, the line and the setting.
set -u
top=${XE_TOP_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
src=${XE_TOP_SRCDIR:-$top}
. "$src/t/lib/offline.sh"
XEDGE="$top/src/xedge"
d=$(mktemp -d "${TMPDIR:-/tmp}/xedge-conf.XXXXXX")
trap 'rm -rf "$d"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

echo "1..105"
offline_keys "$d"
good() {
	cat <<CONF
log_level = "info";
user_store = { path = "$d/users"; };
listeners = (
  { kind = "starttls"; address = "127.0.0.1"; port = 5222; },
  { kind = "direct_tls"; address = "::1"; port = 5223; }
);
domains = ( { name = "Example.Test"; certificate = "$d/cert.pem"; key = "$d/key.pem"; pool = "main"; } );
pools = ( { name = "main"; secret_file = "$d/secret";
            servers = ( { name = "p1"; address = "127.0.0.1"; port = 15222; } ); } );
sasl = { mechanisms = [ "SCRAM-SHA-256", "PLAIN" ]; max_attempts = 3; };
CONF
}
# check NAME SED-EXPRESSION EXPECTED-REGEX: a broken variant is refused with that message
check() {
	good | sed "$2" >"$d/bad.conf"
	out=$("$XEDGE" -t -c "$d/bad.conf" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -Eq -- "$3"; then
		ok 0 "$1: refused ($out)"
	else
		ok 1 "$1"
		echo "#   rc=$rc out=$out (expected /$3/)"
	fi
}

good >"$d/good.conf"
out=$("$XEDGE" -t -c "$d/good.conf" 2>&1)
ok $? "a good configuration is accepted ($out)"
ok "$([ ! -e "$d/users" ] && echo 0 || echo 1)" "-t touches nothing (no user store created)"

check "port out of range" 's/port = 5222/port = 70000/' "bad\.conf:4: port: must be between 1 and 65535"
check "unknown listener kind" 's/"direct_tls"/"quic"/' "bad\.conf:5: kind: 'quic' is not one of"
check "address not numeric" 's/"127.0.0.1"; port = 5222/"localhost"; port = 5222/' "bad\.conf:4: address: 'localhost' is not a numeric"
check "unknown pool" 's/pool = "main"/pool = "nope"/' "bad\.conf:7: pool: no pool named 'nope'"
check "missing secret file" "s#$d/secret#$d/nosecret#" "bad\.conf:8: secret_file: cannot open"
printf 'short\n' >"$d/short"
check "secret too short" "s#$d/secret#$d/short#" "secret_file: .* holds 5 bytes; at least 32"
check "unsupported mechanism" 's/"PLAIN"/"X-OAUTH2"/' "bad\.conf:10: sasl\.mechanisms: 'X-OAUTH2' is not supported \(supported: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, SCRAM-SHA-512-PLUS, SCRAM-SHA-512, DIGEST-MD5, CRAM-MD5, ANONYMOUS, EXTERNAL\)"
check "max_preauth_connections above max_connections" 's/^log_level = "info";/log_level = "info"; limits = { max_connections = 100; max_preauth_connections = 200; };/' "bad\.conf:1: limits\.max_preauth_connections: must not be above max_connections \(100\)"
check "a mechanism listed twice" 's/"PLAIN" \]/"PLAIN", "plain" ]/' "bad\.conf:10: sasl\.mechanisms: 'plain' is listed twice"
check "a domain's mechanism listed twice" 's/pool = "main"; }/pool = "main"; mechanisms = [ "PLAIN", "PLAIN" ]; }/' "bad\.conf:7: domains\.mechanisms: 'PLAIN' is listed twice"
good | sed 's/mechanisms = \[ "SCRAM-SHA-256", "PLAIN" \]/mechanisms = [ "SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "DIGEST-MD5", "CRAM-MD5", "ANONYMOUS", "EXTERNAL" ]/' >"$d/all.conf"
out=$("$XEDGE" -t -c "$d/all.conf" 2>&1)
ok $? "all eleven mechanisms in one list are accepted ($out)"
check "syntax error" 's/max_attempts = 3;/max_attempts = ;/' "bad\.conf:10: syntax error"
check "missing user store" '/user_store/d' "user_store: missing required"
check "certificate not loadable" "s#$d/cert.pem#$d/missing.pem#" "domain example.test: cannot load certificate"
check "wrong type" 's/max_attempts = 3/max_attempts = "3"/' "bad\.conf:10: max_attempts: must be an integer"
check "iq_auth not a boolean" 's/pool = "main"; }/pool = "main"; iq_auth = "yes"; }/' "bad\.conf:7: iq_auth: must be true or false"
good | sed 's/pool = "main"; }/pool = "main"; iq_auth = true; }/' >"$d/iq.conf"
out=$("$XEDGE" -t -c "$d/iq.conf" 2>&1)
ok $? "a domain with iq_auth = true is accepted ($out)"

check "hard cap within one read of the high water mark" 's/^log_level = "info";/log_level = "info"; limits = { pump_high_water = 65536; pump_low_water = 4096; pump_hard_cap = 131072; };/' "pump_hard_cap: must be at least pump_high_water \+ 131072"
check "a misspelt setting" 's/max_attempts = 3;/max_attempt = 3;/' "bad\.conf:10: max_attempt: unknown setting"
check "an unknown setting in a list element" 's/port = 15222;/port = 15222; wieght = 2;/' "bad\.conf:9: wieght: unknown setting"
check "lockout: a misspelt setting" 's/^log_level = "info";/log_level = "info"; lockout = { delay = 5; };/' "bad\.conf:1: delay: unknown setting"
check "lockout: max_delay_ms below delay_ms" 's/^log_level = "info";/log_level = "info"; lockout = { delay_ms = 500; max_delay_ms = 100; };/' "max_delay_ms: must be at least delay_ms"
check "sasl2: a misspelt setting" 's/^log_level = "info";/log_level = "info"; sasl2 = { enable = true; };/' "bad\.conf:1: enable: unknown setting"
check "fast: rotate_after not below token_lifetime" 's/^log_level = "info";/log_level = "info"; fast = { token_lifetime = 60; rotate_after = 60; };/' "rotate_after: must be less than token_lifetime"
check "fast: a lifetime of 0" 's/^log_level = "info";/log_level = "info"; fast = { token_lifetime = 0; };/' "token_lifetime"
check "sasl2 per domain: not a boolean" 's/pool = "main"; }/pool = "main"; sasl2 = "yes"; }/' "sasl2"
check "control: a mode that is not octal" 's#^log_level = "info";#log_level = "info"; control = { socket = "/tmp/x.sock"; mode = "0644x"; };#' "bad\.conf:1: mode: '0644x' is not an octal mode"
check "control: no socket" 's/^log_level = "info";/log_level = "info"; control = { mode = "0600"; };/' "bad\.conf:1: socket: missing required setting"

# in-band registration: a boolean per domain, and its limits
good | sed 's/pool = "main"; }/pool = "main"; register = true; }/; s/^log_level = "info";/log_level = "info"; limits = { registrations_per_address = 2; max_stanza_postauth = 65536; };/' >"$d/reg.conf"
out=$("$XEDGE" -t -c "$d/reg.conf" 2>&1)
ok $? "domains[].register and the registration limits are accepted ($out)"
check "register not a boolean" 's/pool = "main"; }/pool = "main"; register = "yes"; }/' "bad\.conf:7: register: must be true or false"
check "compression with register" 's/pool = "main"; }/pool = "main"; register = true; compression = true; }/' "bad\.conf:7: compression: cannot be on with register on the same domain"
check "post-authentication stanza limit too small" 's/^log_level = "info";/log_level = "info"; limits = { max_stanza_postauth = 10; };/' "max_stanza_postauth: must be between 1024 and"

# the PROXY protocol: a listener's trusted sources, a pool's header out
good | sed 's/port = 5222; }/port = 5222; proxy_protocol = true; proxy_from = [ "127.0.0.1", "::1", "10.0.0.0\/8" ]; }/; s/secret_file = "\([^"]*\)";/secret_file = "\1"; proxy_protocol = true;/; s/^log_level = "info";/log_level = "info"; limits = { max_proxy_header = 1024; };/' >"$d/proxy.conf"
out=$("$XEDGE" -t -c "$d/proxy.conf" 2>&1)
ok $? "listeners[].proxy_protocol/proxy_from, pools[].proxy_protocol and limits.max_proxy_header are accepted ($out)"
check "proxy_protocol without proxy_from" 's/port = 5222; }/port = 5222; proxy_protocol = true; }/' "bad\.conf:4: proxy_from: missing required setting with proxy_protocol"
check "proxy_from without proxy_protocol" 's/port = 5222; }/port = 5222; proxy_from = [ "127.0.0.1" ]; }/' "bad\.conf:4: proxy_from: only with proxy_protocol"
check "proxy_from: a name" 's/port = 5222; }/port = 5222; proxy_protocol = true; proxy_from = [ "lb.example" ]; }/' "bad\.conf:4: proxy_from: 'lb.example' is not a numeric address or prefix"
check "proxy_from: host bits past the prefix" 's/port = 5222; }/port = 5222; proxy_protocol = true; proxy_from = [ "10.0.0.1\/8" ]; }/' "proxy_from: '10.0.0.1/8' is not"
check "proxy_protocol not a boolean" 's/port = 15222; } ); }/port = 15222; } ); proxy_protocol = 1; }/' "bad\.conf:9: proxy_protocol: must be true or false"
good | sed 's/port = 15222; }/port = 15222; weight = 2; kind = "ejabberd"; }/; s/secret_file = "\([^"]*\)";/secret_file = "\1"; policy = "least-conn"; on_down = "next"; health = { interval = 2; timeout = 1; fall = 2; rise = 1; };/' >"$d/policy.conf"
out=$("$XEDGE" -t -c "$d/policy.conf" 2>&1)
ok $? "pools[].policy/on_down/health and servers[].kind are accepted ($out)"
# a routed pool serves one domain: each glue keeps one link per host, xedge
# one per server, and a second domain's link would replace the first
good | sed 's/port = 15222; }/port = 15222; kind = "prosody"; }/; s/secret_file = "\([^"]*\)";/secret_file = "\1"; route = true;/; s/^sasl = /routing = { address = "127.0.0.1"; port = 5290; };\nsasl = /' >"$d/route1.conf"
out=$("$XEDGE" -t -c "$d/route1.conf" 2>&1)
ok $? "a routed pool with one domain is accepted ($out)"
sed 's/^domains = ( \(.*\) );$/domains = ( \1, { name = "other.test"; certificate = "CERT"; key = "KEY"; pool = "main"; } );/; s#"CERT"#"'"$d"'/cert.pem"#; s#"KEY"#"'"$d"'/key.pem"#' "$d/route1.conf" >"$d/route2.conf"
out=$("$XEDGE" -t -c "$d/route2.conf" 2>&1)
if [ $? -ne 0 ] && printf '%s\n' "$out" | grep -q "pool 'main' has route = true and serves two domains, 'example.test' and 'other.test'"; then
	ok 0 "a routed pool with two domains is refused ($out)"
else
	ok 1 "a routed pool with two domains is refused"
	echo "#   out=$out"
fi
check "route = true over an ejabberd server" 's/port = 15222; }/port = 15222; kind = "ejabberd"; }/; s/secret_file = "\([^"]*\)";/secret_file = "\1"; route = true;/' "route = true needs Prosody's routing glue .mod_xedge_pool., and server '[^']*' is an ejabberd server"
check "route = true over a jabberd2 server" 's/port = 15222; }/port = 15222; kind = "jabberd2"; }/; s/secret_file = "\([^"]*\)";/secret_file = "\1"; route = true;/' "route = true needs Prosody's routing glue .mod_xedge_pool., and server '[^']*' is a jabberd2 server"
check "an unknown policy" 's/port = 15222; } ); }/port = 15222; } ); policy = "random"; }/' "bad\.conf:9: policy: must be one of \"sticky\", \"least-conn\", \"round-robin\""
check "an unknown kind" 's/port = 15222; }/port = 15222; kind = "openfire"; }/' "bad\.conf:9: kind: must be one of \"generic\", \"prosody\", \"ejabberd\", \"jabberd2\""
check "jabberd2_router on a Prosody server" 's/port = 15222; }/port = 15222; kind = "prosody"; jabberd2_router = "127.0.0.1:5347"; }/' "bad\.conf:9: jabberd2_router: server '[^']*': jabberd2_router is for kind \"jabberd2\""
check "least-conn over one jabberd2 c2s without jabberd2_router" 's/port = 15222; } ); }/port = 15222; kind = "jabberd2"; } ); policy = "least-conn"; }/' "would split one user's sessions over independent servers: server '[^']*' is a jabberd2 server without jabberd2_router"
good | sed 's/port = 15222; } ); }/port = 15222; kind = "jabberd2"; jabberd2_router = "127.0.0.1:5347"; } ); policy = "least-conn"; }/' >"$d/jd2.conf"
out=$("$XEDGE" -t -c "$d/jd2.conf" 2>&1)
ok $? "least-conn over jabberd2 servers that declare one router is accepted ($out)"
check "an unknown on_down" 's/port = 15222; } ); }/port = 15222; } ); on_down = "retry"; }/' "on_down: must be one of \"error\", \"next\""
check "a misspelt health setting" 's/port = 15222; } ); }/port = 15222; } ); health = { intervall = 3; }; }/' "intervall: unknown setting"
check "health.fall 0" 's/port = 15222; } ); }/port = 15222; } ); health = { fall = 0; }; }/' "fall: must be between 1 and 100"
check "max_proxy_header too small" 's/^log_level = "info";/log_level = "info"; limits = { max_proxy_header = 20; };/' "max_proxy_header: must be between 52 and 65551"
for w in '"auto"' 2 64; do
	good | sed "s/^log_level = \"info\";/log_level = \"info\"; workers = $w;/" >"$d/workers.conf"
	out=$("$XEDGE" -t -c "$d/workers.conf" 2>&1)
	ok $? "workers = $w is accepted ($out)"
done
check "workers 0" 's/^log_level = "info";/log_level = "info"; workers = 0;/' "bad\.conf:1: workers: must be between 1 and 64"
check "workers: a word" 's/^log_level = "info";/log_level = "info"; workers = "all";/' "bad\.conf:1: workers: must be a number \(1 to 64\) or \"auto\""

# federation: the s2s listeners, group, peers, a server's s2s_port, timeouts
openssl rand -hex 32 >"$d/dialback"
good | sed 's/port = 5223; }/port = 5223; }, { kind = "s2s"; address = "127.0.0.1"; port = 5269; }, { kind = "s2s_direct_tls"; address = "127.0.0.1"; port = 5270; }, { kind = "s2s_backend"; address = "127.0.0.1"; port = 5280; }/; s/port = 15222; }/port = 15222; s2s_port = 15269; }/' >"$d/s2s.conf"
cat >>"$d/s2s.conf" <<CONF
s2s = { dialback_secret_file = "$d/dialback"; trust_anchors = "$d/cert.pem"; default_policy = "external";
        require_encryption = true; dns_servers = "127.0.0.1:5353";
        peers = ( { domain = "B.Test"; policy = "refuse"; }, { domain = "c.test"; address = "127.0.0.3"; port = 5269; } ); };
timeouts = { s2s_connect = 5; s2s_handshake = 20; dns = 3; s2s_idle = 300; };
limits = { max_stanza_s2s = 65536; };
CONF
out=$("$XEDGE" -t -c "$d/s2s.conf" 2>&1)
ok $? "the s2s listeners, group, peers, s2s_port, timeouts and max_stanza_s2s are accepted ($out)"
good | sed 's/port = 5223; }/port = 5223; }, { kind = "s2s"; address = "127.0.0.1"; port = 5269; }/' >"$d/s2s-nogroup.conf"
out=$("$XEDGE" -t -c "$d/s2s-nogroup.conf" 2>&1)
printf '%s\n' "$out" | grep -q "an s2s listener needs the s2s group"
ok $? "an s2s listener without the s2s group is refused ($out)"
check "s2s: a misspelt setting" "s#^log_level = \"info\";#log_level = \"info\"; s2s = { dialback_secret_file = \"$d/dialback\"; default_polcy = \"refuse\"; };#" "bad\.conf:1: default_polcy: unknown setting"
check "s2s: an unknown policy" "s#^log_level = \"info\";#log_level = \"info\"; s2s = { dialback_secret_file = \"$d/dialback\"; default_policy = \"maybe\"; };#" "default_policy: must be one of \"dialback\", \"external\", \"refuse\""
check "s2s: a short dialback secret" "s#^log_level = \"info\";#log_level = \"info\"; s2s = { dialback_secret_file = \"$d/short\"; };#" "dialback_secret_file: .* holds 5 bytes; at least 32"
check "s2s: a peer's route not numeric" "s#^log_level = \"info\";#log_level = \"info\"; s2s = { dialback_secret_file = \"$d/dialback\"; peers = ( { domain = \"b.test\"; address = \"b.example\"; } ); };#" "address: 'b.example' is not a numeric"

# a listed peer's pre-shared secret (server-to-server SASL)
openssl rand -hex 32 >"$d/peer.secret"
S2SG="s2s = { dialback_secret_file = \"$d/dialback\"; peers = ( { domain = \"b.test\";"
good | sed "s#^log_level = \"info\";#log_level = \"info\"; $S2SG policy = \"secret\"; secret_file = \"$d/peer.secret\"; mechanisms = [ \"SCRAM-SHA-256\", \"digest-md5\" ]; }, { domain = \"c.test\"; secret_file = \"$d/peer.secret\"; } ); };#" >"$d/peer-secret.conf"
out=$("$XEDGE" -t -c "$d/peer-secret.conf" 2>&1)
ok $? "s2s.peers[]: secret_file, policy \"secret\" and mechanisms are accepted ($out)"
check "s2s: a short peer secret" "s#^log_level = \"info\";#log_level = \"info\"; $S2SG secret_file = \"$d/short\"; } ); };#" "secret_file: '$d/short' holds 5 bytes; at least 32"
check "s2s: policy secret without secret_file" "s#^log_level = \"info\";#log_level = \"info\"; $S2SG policy = \"secret\"; } ); };#" "policy: policy \"secret\" needs the peer's secret_file"
check "s2s: PLAIN for a peer's secret" "s#^log_level = \"info\";#log_level = \"info\"; $S2SG secret_file = \"$d/peer.secret\"; mechanisms = [ \"PLAIN\" ]; } ); };#" "mechanisms: 'PLAIN' is not for a peer's secret"
check "s2s: a refused peer with a secret" "s#^log_level = \"info\";#log_level = \"info\"; $S2SG policy = \"refuse\"; secret_file = \"$d/peer.secret\"; } ); };#" "secret_file: a refused peer has no secret"
check "s2s: default_policy secret" "s#^log_level = \"info\";#log_level = \"info\"; s2s = { dialback_secret_file = \"$d/dialback\"; default_policy = \"secret\"; };#" "default_policy: \"secret\" is a policy for a listed peer"

# tls: the parameters, at the top and per domain; a bad list names the setting
good | sed 's/^log_level = "info";/log_level = "info"; tls = { ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"; ciphersuites = "TLS_AES_256_GCM_SHA384"; groups = "X25519:P-384"; min_version = "TLSv1.2"; };/; s/pool = "main"; } );/pool = "main"; tls = { min_version = "TLSv1.3"; }; } );/' >"$d/tls.conf"
out=$("$XEDGE" -t -c "$d/tls.conf" 2>&1)
ok $? "tls: ciphers, ciphersuites, groups, min_version at the top and in a domain are accepted ($out)"
check "tls: an unknown TLS 1.2 suite" 's/^log_level = "info";/log_level = "info"; tls = { ciphers = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA265"; };/' "bad\.conf:1: tls\.ciphers: 'ECDHE-RSA-AES128-GCM-SHA265' names no TLS 1\.2 cipher suite"
check "tls: a list that selects nothing" 's/^log_level = "info";/log_level = "info"; tls = { ciphers = "!ALL"; };/' "bad\.conf:1: tls\.ciphers: no TLS 1\.2 cipher suite"
check "tls: an unknown TLS 1.3 suite" 's/^log_level = "info";/log_level = "info"; tls = { ciphersuites = "TLS_AES_128_CCM_9_SHA256"; };/' "bad\.conf:1: tls\.ciphersuites: 'TLS_AES_128_CCM_9_SHA256' is not a TLS 1\.3 cipher suite"
check "tls: an unknown group" 's/^log_level = "info";/log_level = "info"; tls = { groups = "X25519:P-999"; };/' "bad\.conf:1: tls\.groups: an unknown group"
check "tls: TLS 1.1" 's/^log_level = "info";/log_level = "info"; tls = { min_version = "TLSv1.1"; };/' "bad\.conf:1: min_version: must be \"TLSv1\.2\" or \"TLSv1\.3\""
check "tls: a domain's bad list names the domain" 's/pool = "main"; } );/pool = "main"; tls = { ciphers = "NOPE"; }; } );/' "bad\.conf:7: domain example\.test: tls\.ciphers: 'NOPE' names no TLS 1\.2"
check "tls: a misspelt setting" 's/^log_level = "info";/log_level = "info"; tls = { cipher = "HIGH"; };/' "bad\.conf:1: cipher: unknown setting"
# tls.ticket_key_file: 80-byte keys, not accessible to others, top group only
(umask 077 && openssl rand 160 >"$d/tk" && openssl rand 79 >"$d/tk79" && openssl rand 80 >"$d/tkw") && chmod 644 "$d/tkw"
good | sed "s#^log_level = \"info\";#log_level = \"info\"; tls = { ticket_key_file = \"$d/tk\"; };#" >"$d/tk.conf"
out=$("$XEDGE" -t -c "$d/tk.conf" 2>&1)
ok $? "tls.ticket_key_file: two 80-byte keys, mode 0600, accepted ($out)"
check "tls.ticket_key_file: 79 bytes" "s#^log_level = \"info\";#log_level = \"info\"; tls = { ticket_key_file = \"$d/tk79\"; };#" "bad\.conf:1: tls\.ticket_key_file: '.*/tk79' holds 79 bytes: it must hold 1 to 8 keys of 80 bytes"
check "tls.ticket_key_file: world-readable" "s#^log_level = \"info\";#log_level = \"info\"; tls = { ticket_key_file = \"$d/tkw\"; };#" "bad\.conf:1: tls\.ticket_key_file: '.*/tkw' is accessible to others"
check "tls.ticket_key_file: missing" "s#^log_level = \"info\";#log_level = \"info\"; tls = { ticket_key_file = \"$d/nope\"; };#" "bad\.conf:1: tls\.ticket_key_file: cannot open '.*/nope'"
check "tls.ticket_key_file: not in a domain's tls group" "s#pool = \"main\"; } );#pool = \"main\"; tls = { ticket_key_file = \"$d/tk\"; }; } );#" "bad\.conf:7: ticket_key_file: unknown setting"

# websocket listeners (RFC 7395)
WS='{ kind = "websocket"; address = "127.0.0.1"; port = 5280;'
good | sed "s#port = 5223; }#port = 5223; }, $WS path = \"/ws\"; origins = [ \"https://chat.example.test\", \"http://localhost:8080\" ]; host_meta_url = \"wss://example.test/ws\"; }, { kind = \"websocket\"; address = \"::1\"; port = 5281; tls = false; encrypted = true; trusted_proxies = [ \"127.0.0.1\", \"10.0.0.0/8\" ]; }#" >"$d/ws.conf"
out=$("$XEDGE" -t -c "$d/ws.conf" 2>&1)
ok $? "websocket listeners: wss with path, origins, host_meta_url; plain ws from trusted proxies ($out)"
printf '%s\n' "$out" | grep -q "websocket listener 127.0.0.1 port 5280: wss, path /ws, host-meta" &&
	printf '%s\n' "$out" | grep -q "websocket listener ::1 port 5281: plain ws behind trusted proxies, path /xmpp-websocket"
ok $? "xedge -t names the websocket listeners (wss or plain ws, path, host-meta)"
check "websocket: plain ws without trusted_proxies" "s#port = 5223; }#port = 5223; }, $WS tls = false; }#" "bad\.conf:5: trusted_proxies: missing required setting with tls = false"
check "websocket: trusted_proxies with tls" "s#port = 5223; }#port = 5223; }, $WS trusted_proxies = [ \"10.0.0.1\" ]; }#" "bad\.conf:5: trusted_proxies: only with tls = false"
check "websocket: encrypted with tls" "s#port = 5223; }#port = 5223; }, $WS encrypted = true; }#" "bad\.conf:5: encrypted: only with tls = false"
check "websocket: a trusted proxy by name" "s#port = 5223; }#port = 5223; }, $WS tls = false; trusted_proxies = [ \"lb.example\" ]; }#" "trusted_proxies: 'lb.example' is not a numeric address"
check "websocket: a path without /" "s#port = 5223; }#port = 5223; }, $WS path = \"ws\"; }#" "bad\.conf:5: path: 'ws' is not a path"
check "websocket: a path under /.well-known/" "s#port = 5223; }#port = 5223; }, $WS path = \"/.well-known/host-meta\"; }#" "path: '/.well-known/host-meta' is not a path"
check "websocket: an origin with a path" "s#port = 5223; }#port = 5223; }, $WS origins = [ \"https://a.example/chat\" ]; }#" "origins: 'https://a.example/chat' is not an origin"
check "websocket: a host-meta URL that is not ws" "s#port = 5223; }#port = 5223; }, $WS host_meta_url = \"https://example.test/ws\"; }#" "host_meta_url: 'https://example.test/ws' is not a WebSocket URL"
check "websocket: a host-meta URL with a quote" "s#port = 5223; }#port = 5223; }, $WS host_meta_url = \"wss://example.test/w'\"; }#" "host_meta_url: .* is not a WebSocket URL"
check "websocket: path on a starttls listener" 's/port = 5222; }/port = 5222; path = "\/x"; }/' "bad\.conf:4: path: only for kind = \"websocket\""
good | sed "s#{ kind = \"starttls\"; address = \"127.0.0.1\"; port = 5222; },##; s#{ kind = \"direct_tls\"; address = \"::1\"; port = 5223; }#$WS }#" >"$d/wsonly.conf"
out=$("$XEDGE" -t -c "$d/wsonly.conf" 2>&1)
ok $? "websocket: a configuration whose only listener is a websocket one is served ($out)"

# Domain names are folded through nameprep, as a JID's domain is: a
# non-ASCII name in any case is the name clients send; one that fails the
# profile is refused with the reason.
check "a domain name with a private-use character" $'s/name = "Example.Test"/name = "exa\xee\x80\x80mple.test"/' \
	"bad\.conf:7: name: 'exa.+mple\.test' is not a domain name a JID can have \(nameprep: "
# (nameprep maps a no-break space to a space, which no domain has)
check "a domain name with a no-break space" $'s/name = "Example.Test"/name = "exa\xc2\xa0mple.test"/' \
	"bad\.conf:7: name: 'exa.+mple\.test' is not a domain name a JID can have \(a space"
check "a domain name with an @" 's/name = "Example.Test"/name = "a@example.test"/' \
	"bad\.conf:7: name: 'a@example\.test' is not a domain name a JID can have \(a space, '@'"
check "the same domain in fullwidth letters" \
	"s#pool = \"main\"; } );#pool = \"main\"; }, { name = \"ＥＸＡＭＰＬＥ.test\"; certificate = \"$d/cert.pem\"; key = \"$d/key.pem\"; pool = \"main\"; } );#" \
	"bad\.conf:7: name: domain 'example\.test' is defined twice"
good | sed 's/name = "Example.Test"/name = "ÉXAMPLE.Test"/' >"$d/idn.conf"
out=$("$XEDGE" -t -c "$d/idn.conf" 2>&1)
ok $? "a non-ASCII domain name in capitals is accepted ($out)"

# The sample documents every setting and parses; only its files are missing.
out=$("$XEDGE" -t -c "$src/etc/xedge.conf.sample" 2>&1)
printf '%s\n' "$out" | grep -Eq "xedge.conf.sample:[0-9]+: secret_file: cannot open '/etc/xedge/assertion.secret'"
ok $? "etc/xedge.conf.sample parses up to its (absent) secret file ($out)"

# Every setting xedge knows is in the sample and in xedge.conf(5): the
# names of conf*.c's string lists (static const char *const x[] = {...}:
# the known settings of each group, against which an unknown one is
# refused, and the values of the enumerations kept that way). A setting
# added to such a list and not to the sample or the page fails here; at
# least 120 names must be found (135 when written), so that a list
# reformatted out of the pattern does not silently drop out.
known=$(awk '/static const char \*const [a-z_0-9]+\[\] = \{/ { on = 1 }
	on { while (match($0, /"[^"]*"/)) { print substr($0, RSTART + 1, RLENGTH - 2); $0 = substr($0, RSTART + RLENGTH) } }
	on && /\};/ { on = 0 }' "$src"/src/core/conf*.c | sort -u)
miss_sample= miss_man=
for k in $known; do
	grep -qw -- "$k" "$src/etc/xedge.conf.sample" || miss_sample="$miss_sample $k"
	grep -qw -- "$k" "$src/doc/xedge.conf.5" || miss_man="$miss_man $k"
done
nknown=$(printf '%s\n' $known | grep -c .)
ok "$([ "$nknown" -ge 120 ] && [ -z "$miss_sample" ] && echo 0 || echo 1)" \
	"the sample names each of the $nknown known settings and values${miss_sample:+ (missing:$miss_sample)}"
ok "$([ "$nknown" -ge 120 ] && [ -z "$miss_man" ] && echo 0 || echo 1)" \
	"xedge.conf(5) names each of them${miss_man:+ (missing:$miss_man)}"
