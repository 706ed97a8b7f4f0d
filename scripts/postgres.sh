#!/usr/bin/env bash
# scripts/postgres.sh start|stop|env — a throw-away PostgreSQL 15 cluster
# (Debian postgresql) on a free loopback port, data under .tmp/postgres.
# Idempotent: "start" reuses a running cluster; "stop" stops it and deletes
# its data. "env" prints PG_DSN=postgres://… of the running cluster.
#
# The cluster listens on 127.0.0.1 only, has no Unix socket, and accepts only
# password (scram-sha-256) logins of the superuser "edgeguard" over loopback
# (a random password, kept in .tmp/postgres/env). PostgreSQL refuses to run as
# root, so as root the server runs as the unprivileged "postgres" user (the
# Debian package creates it); if that user cannot reach .tmp/postgres (a clone
# under a private home directory), the data directory goes to a private
# mktemp directory under /tmp instead, recorded in .tmp/postgres/datadir.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DIR="$TMPROOT/postgres"
mkdir -p "$DIR"
PGBIN=/usr/lib/postgresql/15/bin
DB=edgeguard_test
USER_NAME=edgeguard

# as_owner runs a command as the cluster's owner: "postgres" when we are
# root, ourselves otherwise.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

datadir() { cat "$DIR/datadir" 2>/dev/null || true; }

running() {
	local d
	d=$(datadir)
	[ -n "$d" ] && [ -f "$DIR/env" ] && as_owner "$PGBIN/pg_ctl" -D "$d" status >/dev/null 2>&1
}

stop_cluster() {
	local d
	d=$(datadir)
	if [ -n "$d" ] && [ -d "$d" ]; then
		as_owner "$PGBIN/pg_ctl" -D "$d" stop -m fast -w >/dev/null 2>&1 || true
		rm -rf "$(dirname "$d")" # base: .tmp/postgres/cluster or /tmp/edgeguard-pg.*
	fi
	rm -f "$DIR/datadir" "$DIR/env"
}

case "${1:-}" in
start)
	if running; then cat "$DIR/env"; exit 0; fi
	stop_cluster # leftovers of a crashed run
	[ -x "$PGBIN/initdb" ] || apt_install postgresql-15
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 binaries not found in $PGBIN"
	# Debian's package may start a system cluster on 5432; we never use it.

	# base (owned by the cluster's owner, mode 700) holds data/ and the
	# initial password file.
	base="$DIR/cluster"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "user postgres missing (the postgresql package creates it)"
		mkdir -p "$base"
		chown postgres: "$base"
		chmod 700 "$base"
		if ! runuser -u postgres -- test -w "$base"; then
			rm -rf "$base"
			base=$(mktemp -d /tmp/edgeguard-pg.XXXXXX)
			chown postgres: "$base"
		fi
	else
		mkdir -p -m 700 "$base"
	fi
	data="$base/data"
	echo "$data" >"$DIR/datadir"

	password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	pwfile="$base/pw"
	umask 077
	printf '%s\n' "$password" | as_owner tee "$pwfile" >/dev/null
	as_owner "$PGBIN/initdb" -D "$data" -U "$USER_NAME" --pwfile="$pwfile" \
		--auth-host=scram-sha-256 --auth-local=reject -E UTF8 --locale=C.UTF-8 \
		>"$DIR/initdb.log" 2>&1 || die "initdb failed (see $DIR/initdb.log)"
	as_owner rm -f "$pwfile"
	# loopback TCP only: no Unix socket, and pg_hba accepts nothing but
	# scram logins from 127.0.0.1 and ::1 (initdb's host lines).
	as_owner sh -c "grep -E '^host[[:space:]].*(127\.0\.0\.1/32|::1/128)' '$data/pg_hba.conf' >'$data/pg_hba.new' && mv '$data/pg_hba.new' '$data/pg_hba.conf'"

	port=$(free_port)
	as_owner "$PGBIN/pg_ctl" -D "$data" -l "$data/postgres.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null || die "postgres did not start (see $data/postgres.log)"
	wait_tcp 127.0.0.1 "$port" 30 || die "postgres does not accept connections (see $data/postgres.log)"

	PGPASSWORD="$password" "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U "$USER_NAME" -d postgres -qAt -v ON_ERROR_STOP=1 \
		-c "CREATE DATABASE $DB" >/dev/null || die "could not create database $DB"
	echo "PG_DSN=postgres://$USER_NAME:$password@127.0.0.1:$port/$DB?sslmode=disable" >"$DIR/env"
	cat "$DIR/env"
	;;
stop)
	stop_cluster
	;;
env)
	running && cat "$DIR/env"
	;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
