# t/lib/pg.sh: a throwaway PostgreSQL 15 cluster for a test (sourced).
# shellcheck shell=bash
# shellcheck disable=SC2034 # PG_CONNINFO, PG_PASSFILE are for the tests that source this
#
#   pg_up DIR PORT    initdb DIR/pg on first use (as the unprivileged user postgres when run
#                     as root), start it on 127.0.0.1:PORT, wait until it answers; creates the
#                     role xe (password in DIR/pg/xe.password) and the database xe.
#                     Sets PG_PID, PG_CONNINFO (without the password), PG_PASSFILE.
#   pg_stop           fast shutdown by PID, bounded wait (the data stays: pg_up restarts it)
#   pg_down           pg_stop, and the data goes
#   pg_sql SQL        SQL as the superuser on the socket, unaligned output
#
# With a sandbox of several nodes (sandbox_up --store postgresql --nodes 2):
#   pg_sandbox        PG_DIR, PG_PORT, PG_PID of the sandbox's PostgreSQL, for
#                     pg_sql and pg_stop; pg_up "$XE_SANDBOX_DIR_SB" "$PG_PORT"
#                     starts it again (add its PG_PID to XEDGE_PIDS)
#   replica_confs     XE_SANDBOX_DIR/replicaN.conf for nodes 1 and 2: the
#                     node's configuration without its database, its LMDB
#                     replica alone, read-only (what the node's Cyrus reads)
#   replica N ARGS    xedgectl ARGS on node N's replica (stderr too)
#   until_both CMD    poll the replicas (every 20 ms, at most 3 s) until CMD N
#                     holds for N = 1 and 2; prints the milliseconds taken
# Never a system service: the server is the test's child, stopped by its PID.
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

_pg_as() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=postgres --regid=postgres --init-groups --reset-env "$@"
	else
		"$@"
	fi
}

pg_up() { # pg_up DIR PORT
	PG_DIR=$1/pg
	PG_PORT=$2
	[ -x "$PGBIN/postgres" ] || bail "no PostgreSQL 15 in $PGBIN (apt-get install postgresql)"
	chmod 711 "$1"
	if [ ! -d "$PG_DIR/data" ]; then
		if [ "$(id -u)" = 0 ]; then
			install -d -o postgres -g postgres -m 700 "$PG_DIR" "$PG_DIR/sock"
		else
			install -d -m 700 "$PG_DIR" "$PG_DIR/sock"
		fi
		(cd / && _pg_as "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres \
			--auth-local=trust --auth-host=scram-sha-256 \
			--encoding=UTF8 --locale=C.UTF-8 --no-sync) >"$1/pg-initdb.log" 2>&1 ||
			bail "initdb failed: $(tail -3 "$1/pg-initdb.log")"
		cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
		PG_NEW=1
	else
		PG_NEW=0
	fi
	(cd / && exec_pg_postgres) &
	PG_PID=$!
	local i=0
	until "$PGBIN/pg_isready" -q -h "$PG_DIR/sock" -p "$PG_PORT" -U postgres -d postgres -t 1; do
		i=$((i + 1))
		[ $i -le 100 ] || bail "PostgreSQL not ready after 10 s: $(tail -3 "$PG_DIR/log")"
		kill -0 "$PG_PID" 2>/dev/null || bail "PostgreSQL exited: $(tail -3 "$PG_DIR/log")"
		sleep 0.1
	done
	PG_PASSFILE=$1/xe.password
	if [ "$PG_NEW" = 1 ]; then
		echo "xe-$$-secret" >"$PG_PASSFILE"
		chmod 600 "$PG_PASSFILE"
		"$PGBIN/psql" -X -q -h "$PG_DIR/sock" -p "$PG_PORT" -U postgres -d postgres \
			-v ON_ERROR_STOP=1 -c "CREATE ROLE xe LOGIN PASSWORD 'xe-$$-secret'" \
			-c "CREATE DATABASE xe OWNER xe" >/dev/null || bail "cannot create the role"
	fi
	PG_CONNINFO="host=127.0.0.1 port=$PG_PORT dbname=xe user=xe"
}

# the postmaster itself (exec: $! is its PID)
exec_pg_postgres() {
	if [ "$(id -u)" = 0 ]; then
		exec setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
			"$PGBIN/postgres" -D "$PG_DIR/data" >>"$PG_DIR/log" 2>&1
	else
		exec "$PGBIN/postgres" -D "$PG_DIR/data" >>"$PG_DIR/log" 2>&1
	fi
}

pg_stop() {
	[ -n "${PG_PID:-}" ] || return 0
	kill -INT "$PG_PID" 2>/dev/null
	local i=0
	while kill -0 "$PG_PID" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then kill -QUIT "$PG_PID" 2>/dev/null; break; fi
		sleep 0.05
	done
	wait "$PG_PID" 2>/dev/null
	PG_PID=
}

pg_down() {
	pg_stop
	[ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
}

# pg_sql SQL: run SQL as the superuser on the socket, unaligned output
pg_sql() {
	"$PGBIN/psql" -X -q -At -h "$PG_DIR/sock" -p "$PG_PORT" -U postgres -d xe -c "$1"
}

pg_sandbox() {
	PG_DIR=$XE_SANDBOX_DIR_SB/pg
	PG_PORT=$XEDGE_PG_PORT
	PG_PID=$XEDGE_PG_PID
}

replica_confs() {
	local n c
	for n in 1 2; do
		c=XEDGE_CONF_$n
		sed -e '/^ *database/d' -e '/^ *node = /d' "${!c}" >"$XE_SANDBOX_DIR/replica$n.conf"
	done
}

replica() { timeout 10 "$XE_TOP_BUILDDIR/src/xedgectl" -c "$XE_SANDBOX_DIR/replica$1.conf" "${@:2}" 2>&1; }

until_both() {
	local t0 n ok
	t0=$(now_ms)
	while [ $(($(now_ms) - t0)) -lt 3000 ]; do
		ok=1
		for n in 1 2; do "$@" "$n" || ok=0; done
		[ $ok = 1 ] && { echo $(($(now_ms) - t0)); return 0; }
		sleep 0.02
	done
	echo 3000
	return 1
}
