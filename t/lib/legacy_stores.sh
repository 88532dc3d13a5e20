# t/lib/legacy_stores.sh: real legacy servers keeping their own users, for
# the import tests (sourced after t/lib/sandbox.sh, inside a sandbox_up'd
# test). Each runs on 127.0.0.1 only, in a directory of the test's sandbox:
#
#   legacy_ports N                  sets LEGACY_PORT to the first of N free
#                                   ports below 32768
#   ejabberd_start DIR FORMAT       ejabberd 23.01 with its own users (mnesia,
#                                   auth_method internal, auth_password_format
#                                   FORMAT: scram or plain), no listener at all:
#                                   ejabberdctl reaches it over the Erlang
#                                   distribution on LEGACY_PORT (no epmd)
#   ejabberd_ctl DIR ARGS...        ejabberdctl against it
#   ejabberd_stop DIR               SIGTERM to its process group, waits
#   jabberd2_start DIR PWTYPE       jabberd2's router, sm and c2s, the c2s with
#                                   Debian's authreg module ("sqlite", the
#                                   database made from Debian's db-setup.sqlite)
#                                   and password_type PWTYPE (plaintext or
#                                   crypt), in-band registration on (plaintext
#                                   only), STARTTLS
#                                   with DIR/cert.pem; c2s on LEGACY_PORT,
#                                   router on LEGACY_PORT+1
#   jabberd2_stop DIR
#   legacy_stop_all                 what is still running (for the EXIT trap)

LEGACY_GROUPS=()
LEGACY_PIDS=()

legacy_ports() {
	local n k free
	for _ in $(seq 1 50); do
		n=$((20000 + RANDOM % 12000))
		free=1
		for k in $(seq 0 $(($1 - 1))); do
			_port_free $((n + k)) || { free=0; break; }
		done
		[ $free = 1 ] && { LEGACY_PORT=$n; return 0; }
	done
	bail "no free ports for the legacy servers"
}

_ej() {
	local d=$1
	shift
	timeout 60 ejabberdctl --config-dir "$d" --ctl-config "$d/ejabberdctl.cfg" --spool "$d/spool" \
		--logs "$d/logs" "$@"
}

ejabberd_ctl() { _ej "$@"; }

ejabberd_start() {
	local d=$1 format=$2 end
	command -v ejabberdctl >/dev/null || bail "ejabberdctl is not installed (apt-get install ejabberd)"
	mkdir -p "$d/spool" "$d/logs"
	cat >"$d/ejabberd.yml" <<EOF
# a legacy ejabberd keeping its own users ($format passwords); no listener
loglevel: info
log_rotate_count: 0
hosts:
  - "example.test"
listen: []
auth_method: internal
auth_password_format: $format
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_roster: {}
EOF
	cat >"$d/ejabberdctl.cfg" <<EOF
ERLANG_NODE=xedge_import_$LEGACY_PORT@localhost
ERL_DIST_PORT=$LEGACY_PORT
INET_DIST_INTERFACE=127.0.0.1
ERL_OPTIONS="-setcookie xedge-import-$(openssl rand -hex 8) -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_CONFIG_PATH=$d/ejabberd.yml
EJABBERD_PID_PATH=$d/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
EXEC_CMD=as_current_user
EOF
	printf '%s\n' '{lookup,["file","native"]}.' '{host,{127,0,0,1}, ["localhost","hostalias"]}.' \
		'{file, resolv, "/etc/resolv.conf"}.' >"$d/inetrc"
	# the readiness line below must be this run's
	[ -f "$d/logs/ejabberd.log" ] && mv -f "$d/logs/ejabberd.log" "$d/logs/ejabberd.log.$SECONDS"
	setsid ejabberdctl --config-dir "$d" --ctl-config "$d/ejabberdctl.cfg" --spool "$d/spool" \
		--logs "$d/logs" foreground </dev/null >"$d/console.out" 2>&1 &
	echo $! >"$d/session"
	LEGACY_GROUPS+=("$(cat "$d/session")")
	end=$((SECONDS + 40))
	until grep -q "is started in the node" "$d/logs/ejabberd.log" 2>/dev/null; do
		if [ $SECONDS -ge $end ] || ! kill -0 "$(cat "$d/session")" 2>/dev/null; then
			diag "$(tail -n 20 "$d/console.out" "$d/logs/ejabberd.log" 2>/dev/null)"
			bail "ejabberd did not start"
		fi
		sleep 0.1
	done
}

ejabberd_stop() {
	local sid end
	sid=$(cat "$1/session")
	kill -TERM -- "-$sid" 2>/dev/null
	end=$((SECONDS + 20))
	while pgrep -s "$sid" >/dev/null; do
		[ $SECONDS -ge $end ] && { pkill -KILL -s "$sid"; break; }
		sleep 0.1
	done
}

jabberd2_start() {
	local d=$1 pwtype=$2 lib sbin=${JABBERD2_SBIN:-/usr/sbin} rp=$((LEGACY_PORT + 1)) p=$LEGACY_PORT
	lib=${JABBERD2_LIBDIR:-/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/jabberd2}
	[ -x "$sbin/jabberd2-c2s" ] || bail "jabberd2 is not installed (apt-get install jabberd2)"
	[ -e "$lib/authreg_sqlite.so" ] || bail "$lib/authreg_sqlite.so not found"
	mkdir -p "$d/logs"
	if [ ! -e "$d/sqlite.db" ]; then
		# as Debian documents it: the schema of /usr/share/doc/jabberd2/db-setup.sqlite
		zcat /usr/share/doc/jabberd2/db-setup.sqlite.gz | sqlite3 "$d/sqlite.db" ||
			bail "cannot create jabberd2's database from db-setup.sqlite"
	fi
	if [ ! -e "$d/server.pem" ]; then # for STARTTLS (registration needs it)
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=example.test" \
			-addext "subjectAltName=DNS:example.test" -addext "basicConstraints=critical,CA:TRUE" \
			-keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null || bail "openssl req failed"
		cat "$d/cert.pem" "$d/key.pem" >"$d/server.pem"
	fi
	local secret
	secret=$(openssl rand -hex 12)
	echo "<users><user><name>jabberd</name><secret>$secret</secret></user></users>" >"$d/router-users.xml"
	cat >"$d/router.xml" <<EOF
<router><id>router</id><pidfile>$d/router.pid</pidfile>
<log type='file'><ident>jabberd/router</ident><file>$d/logs/router.log</file></log>
<local><ip>127.0.0.1</ip><port>$rp</port><users>$d/router-users.xml</users></local>
<check><interval>60</interval><keepalive>0</keepalive></check>
<io><max_fds>256</max_fds><limits><bytes>0</bytes><connects>0</connects></limits>
<access><order>allow,deny</order></access></io>
<aci><acl type='all'><user>jabberd</user></acl></aci></router>
EOF
	local tr="<router><ip>127.0.0.1</ip><port>$rp</port><user>jabberd</user><pass>$secret</pass>
<retry><init>20</init><lost>3</lost><sleep>1</sleep></retry></router>"
	cat >"$d/sm.xml" <<EOF
<sm><id>example.test</id><pidfile>$d/sm.pid</pidfile>$tr
<log type='file'><ident>jabberd/sm</ident><file>$d/logs/sm.log</file></log>
<local><id>example.test</id></local>
<storage><path>$lib</path><driver>sqlite</driver>
<sqlite><dbname>$d/sqlite.db</dbname><busy-timeout>2000</busy-timeout></sqlite></storage>
<modules><path>$lib</path>
<chain id='sess-start'><module>status</module></chain>
<chain id='sess-end'><module>status</module></chain>
<chain id='in-sess'><module>validate</module><module>status</module><module>roster</module>
<module>presence</module><module>deliver</module></chain>
<chain id='out-sess'></chain>
<chain id='in-router'><module>session</module><module>validate</module><module>presence</module></chain>
<chain id='out-router'></chain>
<chain id='pkt-sm'><module>presence</module></chain>
<chain id='pkt-user'><module>roster</module><module>presence</module><module>deliver</module></chain>
<chain id='pkt-router'><module>session</module></chain>
<chain id='user-load'><module>active</module><module>roster</module></chain>
<chain id='user-unload'></chain>
<chain id='user-create'><module>active</module></chain>
<chain id='user-delete'><module>active</module><module>roster</module><module>status</module></chain>
</modules>
<user><auto-create/></user></sm>
EOF
	# registration only with plaintext passwords (jabberd2-c2s 2.7 crashes at
	# a new connection when it is on with <crypt/>)
	local reg=""
	[ "$pwtype" = plaintext ] && reg="register-enable='true'"
	cat >"$d/c2s.xml" <<EOF
<c2s><id>c2s</id><pidfile>$d/c2s.pid</pidfile>$tr
<log type='file'><ident>jabberd/c2s</ident><file>$d/logs/c2s.log</file></log>
<local><id $reg pemfile='$d/server.pem'>example.test</id>
<ip>127.0.0.1</ip><port>$p</port></local>
<io><max_fds>256</max_fds><limits><bytes>0</bytes><stanzas>0</stanzas><connects>0</connects>
<stanzasize>65535</stanzasize></limits><access><order>allow,deny</order></access>
<check><interval>0</interval><idle>0</idle><keepalive>0</keepalive></check></io>
<authreg><path>$lib</path><module>sqlite</module>
<mechanisms><traditional><plain/></traditional><sasl><plain/></sasl></mechanisms>
<sqlite><dbname>$d/sqlite.db</dbname><busy-timeout>2000</busy-timeout>
<password_type><$pwtype/></password_type></sqlite></authreg></c2s>
EOF
	"$sbin/jabberd2-router" -c "$d/router.xml" </dev/null >"$d/router.out" 2>&1 &
	echo $! >"$d/router.pid.t"
	LEGACY_PIDS+=("$!")
	local end=$((SECONDS + 10))
	until (exec 3<>"/dev/tcp/127.0.0.1/$rp") 2>/dev/null; do
		[ $SECONDS -ge $end ] && bail "jabberd2's router did not start: $(tail -n 5 "$d/router.out")"
		sleep 0.05
	done
	"$sbin/jabberd2-sm" -c "$d/sm.xml" </dev/null >"$d/sm.out" 2>&1 &
	echo $! >"$d/sm.pid.t"
	LEGACY_PIDS+=("$!")
	"$sbin/jabberd2-c2s" -c "$d/c2s.xml" </dev/null >"$d/c2s.out" 2>&1 &
	echo $! >"$d/c2s.pid.t"
	LEGACY_PIDS+=("$!")
	end=$((SECONDS + 20))
	until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
		grep -q "ready for sessions" "$d/logs/sm.log" 2>/dev/null; do
		[ $SECONDS -ge $end ] && bail "jabberd2 did not start: $(tail -n 5 "$d/c2s.out" "$d/logs/"*.log)"
		sleep 0.05
	done
}

_stop_pid() {
	local p=$1 end=$((SECONDS + 10))
	kill -TERM "$p" 2>/dev/null || return 0
	while kill -0 "$p" 2>/dev/null; do
		[ $SECONDS -ge $end ] && { kill -KILL "$p" 2>/dev/null; break; }
		sleep 0.05
	done
}

jabberd2_stop() {
	local f
	for f in c2s sm router; do
		[ -f "$1/$f.pid.t" ] && _stop_pid "$(cat "$1/$f.pid.t")"
		rm -f "$1/$f.pid.t"
	done
}

legacy_stop_all() {
	local g p
	for g in "${LEGACY_GROUPS[@]}"; do
		pgrep -s "$g" >/dev/null 2>&1 && kill -TERM -- "-$g" 2>/dev/null
	done
	for p in "${LEGACY_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	return 0
}
