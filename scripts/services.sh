#!/usr/bin/env bash
# services.sh up|down|env|status|redis-up|pulsar-restart|pulsar-stop|pulsar-start
#
# The real servers the test suite runs against, on ports that never collide
# with a developer's own servers:
#   PostgreSQL  127.0.0.1:15432  (user postgres, trust auth)
#   MariaDB     127.0.0.1:13306  (root, no password, strict sql_mode)
#   Pulsar      127.0.0.1:16650  (binary), 127.0.0.1:18080 (admin HTTP)
#   Kafka       127.0.0.1:19092  (KRaft, one broker+controller; controller 19093)
#   Redis       127.0.0.1:16379  (Debian's redis-server, append-only file on)
#
#   up       install what is missing (Debian packages), start all five from
#            empty data dirs and wait until each answers; a no-op for servers
#            already up. Also sets up the Python test clients (scripts/pyenv.sh)
#            and builds the test OpenTelemetry Collector (scripts/otelcol.sh).
#   down     stop what `up` started (found by the pids under the state dir).
#   env      print `export PIPELINE_TEST_*=...` lines:
#            eval "$(scripts/services.sh env)"; go test ./internal/sink/...
#   status   say what runs; exit 0 only when all five answer.
#   redis-up start only Redis (a no-op when it runs).
#   pulsar-restart|pulsar-stop|pulsar-start  see scripts/pulsar/ctl.sh.
#   kafka-restart|kafka-stop|kafka-start     see scripts/kafka/ctl.sh.
#
# State (data, logs, pids) lives under ${PIPELINE_TEST_STATE:-/tmp/pipeline-test},
# downloads under ${PIPELINE_CACHE:-$HOME/.cache/pipeline}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
# shellcheck disable=SC2034 # read by log() in lib.sh
LOG_TAG=services

PG_PORT=15432
MARIA_PORT=13306
REDIS_PORT=16379
PULSAR_CTL=$here/pulsar/ctl.sh
KAFKA_CTL=$here/kafka/ctl.sh
KAFKA_BROKERS=127.0.0.1:19092

PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
MYSQL_URL="mysql://root@127.0.0.1:$MARIA_PORT/"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

state=$PIPELINE_TEST_STATE
pg_dir=$state/postgres
pg_data=$pg_dir/data
pg_log=$pg_dir/postgres.log
maria_dir=$state/mariadb
maria_pid=$maria_dir/mariadbd.pid
maria_log=$maria_dir/mariadb.log
maria_sock=$maria_dir/mariadb.sock
redis_dir=$state/redis
redis_pid=$redis_dir/redis.pid
redis_log=$redis_dir/redis.log

# ---------------------------------------------------------------- packages

# pg_bindir: the newest PostgreSQL server installed by Debian's packages.
pg_bindir() {
	local dir
	dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
	[[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl && -x $dir/psql ]] || return 1
	echo "$dir"
}

# mariadbd lives in /usr/sbin, which a non-root PATH may lack.
mariadbd_bin() {
	local bin
	for bin in "$(command -v mariadbd 2>/dev/null)" /usr/sbin/mariadbd; do
		[[ -n $bin && -x $bin ]] && {
			echo "$bin"
			return 0
		}
	done
	return 1
}

# missing_packages: the Debian packages to install for what this machine
# lacks. Chromium and its driver are for the browser tests (scripts/test-web.sh),
# sqlite3 and openssl for the SDKs' tests (scripts/test-sdk.sh).
missing_packages() {
	local -a missing=()
	pg_bindir >/dev/null || missing+=(postgresql)
	{ mariadbd_bin >/dev/null && have mariadb-install-db && have mariadb; } || missing+=(mariadb-server mariadb-client)
	have chromium || missing+=(chromium fonts-liberation)
	have chromedriver || missing+=(chromium-driver)
	have curl || missing+=(curl)
	have java || missing+=(openjdk-17-jre-headless)
	have mvn || missing+=(maven)
	have git || missing+=(git)
	{ have redis-server && have redis-cli; } || missing+=(redis-server)
	have sqlite3 || missing+=(sqlite3)
	have openssl || missing+=(openssl)
	echo "${missing[@]}"
}

# apt_install PKG...: install from Debian's mirrors without starting the
# packages' own services: a policy-rc.d that says "no" keeps postinst
# scripts from launching a second PostgreSQL/MariaDB on the default ports.
apt_install() {
	local policy=/usr/sbin/policy-rc.d added=0 rc=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# added by scripts/services.sh during apt-get install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added=1
	fi
	log "installing from Debian's packages: $*"
	{
		DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
	} </dev/null || rc=$?
	((added)) && rm -f "$policy"
	((rc == 0)) || die "apt-get install $* failed (exit $rc)"
}

ensure_packages() {
	local missing
	missing=$(missing_packages)
	[[ -z $missing ]] && return 0
	[[ $EUID -eq 0 ]] || die "missing packages: $missing; install them (apt-get install $missing) or run as root"
	# shellcheck disable=SC2086 # a list of package names
	apt_install $missing
	missing=$(missing_packages)
	[[ -z $missing ]] || die "still missing after apt-get install: $missing"
}

# ---------------------------------------------------------------- PostgreSQL

# as_postgres CMD...: PostgreSQL refuses to run as root, so as root run its
# tools as the postgres user that Debian's package creates.
as_postgres() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_running() { pid_alive "$pg_data/postmaster.pid" postgres; }

pg_ready() {
	local out
	out=$("$(pg_bindir)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtqc 'select 1' 2>/dev/null) || return 1
	[[ $out == 1 ]]
}

pg_up() {
	local bindir
	bindir=$(pg_bindir) || die "no PostgreSQL server binaries under /usr/lib/postgresql"
	if pg_running; then
		log "postgres already running (pid $(head -n1 "$pg_data/postmaster.pid"))"
	else
		port_open "$PG_PORT" && die "port $PG_PORT is taken by a process this script did not start"
		rm -rf "$pg_dir"
		mkdir -p "$pg_dir/run"
		[[ $EUID -eq 0 ]] && chown -R postgres: "$pg_dir"
		as_postgres test -w "$pg_dir" ||
			die "user postgres cannot write $pg_dir: PIPELINE_TEST_STATE must be reachable by it"
		log "initdb $pg_data ($bindir)"
		as_postgres "$bindir/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --no-locale \
			>"$pg_dir/initdb.log" 2>&1 || die_with_log "$pg_dir/initdb.log" "initdb failed"
		# fsync/full_page_writes off: a test server loses nothing that
		# matters on an OS crash, and commits get much cheaper.
		cat >>"$pg_data/postgresql.conf" <<-EOF
			# added by scripts/services.sh
			listen_addresses = '127.0.0.1'
			port = $PG_PORT
			unix_socket_directories = '$pg_dir/run'
			max_connections = 200
			fsync = off
			full_page_writes = off
			# bench/ingest's batch-sink reads each row's commit time
			# (pg_xact_commit_timestamp) for its publish → row latency.
			track_commit_timestamp = on
		EOF
		local -a as_pg=()
		[[ $EUID -eq 0 ]] && as_pg=(runuser -u postgres --)
		# setsid: the postmaster gets its own session, like the other servers.
		if ! setsid -w "${as_pg[@]}" "$bindir/pg_ctl" -D "$pg_data" -l "$pg_log" -w -t 60 start \
			</dev/null >"$pg_dir/pg_ctl.log" 2>&1 7>&- 8>&- 9>&-; then
			die_with_log "$pg_log" "postgres did not start (see also $pg_dir/pg_ctl.log)"
		fi
	fi
	wait_until 60 pg_ready || die_with_log "$pg_log" "postgres does not answer select 1 on 127.0.0.1:$PG_PORT"
	log "postgres ready at $PG_URL"
}

pg_down() {
	pg_running || return 0
	log "stopping postgres (pid $(head -n1 "$pg_data/postmaster.pid"))"
	as_postgres "$(pg_bindir)/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		stop_pid "$pg_data/postmaster.pid" postgres 5 postgres
}

# ---------------------------------------------------------------- MariaDB

maria_client() { mariadb --no-defaults -N -B "$@"; }
maria_tcp() { maria_client --protocol=TCP -h 127.0.0.1 -P "$MARIA_PORT" -u root "$@"; }
maria_socket() { maria_client --protocol=SOCKET --socket="$maria_sock" -u root "$@"; }

maria_ready_socket() { [[ $(maria_socket -e 'select 1' 2>/dev/null) == 1 ]]; }
maria_ready_tcp() { [[ $(maria_tcp -e 'select 1' 2>/dev/null) == 1 ]]; }

# maria_fix_root_tcp: tests connect as root over TCP without a password. The
# 'normal' install creates root@127.0.0.1 already; create it if a future
# mariadb-install-db does not.
maria_fix_root_tcp() {
	maria_ready_tcp && return 0
	log "root cannot log in over TCP from 127.0.0.1; granting it"
	maria_socket -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		FLUSH PRIVILEGES;" || die_with_log "$maria_log" "could not grant root@127.0.0.1"
	maria_ready_tcp || die_with_log "$maria_log" "root still cannot log in over TCP on 127.0.0.1:$MARIA_PORT"
}

maria_up() {
	local bin
	bin=$(mariadbd_bin) || die "mariadbd not found"
	if pid_alive "$maria_pid" mariadbd; then
		log "mariadb already running (pid $(head -n1 "$maria_pid"))"
	else
		port_open "$MARIA_PORT" && die "port $MARIA_PORT is taken by a process this script did not start"
		rm -rf "$maria_dir"
		mkdir -p "$maria_dir/data" "$maria_dir/tmp"
		local -a as_user=()
		[[ $EUID -eq 0 ]] && as_user=(--user=root)
		log "mariadb-install-db $maria_dir/data"
		# --no-defaults everywhere: /etc/mysql/my.cnf belongs to the machine's
		# own MariaDB and must not leak into the test server.
		mariadb-install-db --no-defaults "${as_user[@]}" --datadir="$maria_dir/data" \
			--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
			>"$maria_dir/install.log" 2>&1 || die_with_log "$maria_dir/install.log" "mariadb-install-db failed"
		spawn_daemon "$maria_pid" "$maria_log" "$maria_dir" "$bin" --no-defaults "${as_user[@]}" \
			--datadir="$maria_dir/data" --tmpdir="$maria_dir/tmp" \
			--pid-file="$maria_dir/data/mariadbd-own.pid" --log-error="$maria_log" \
			--bind-address=127.0.0.1 --port="$MARIA_PORT" --socket="$maria_sock" \
			--skip-name-resolve --max-connections=200 \
			--sql-mode=STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION \
			--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
			--innodb-flush-log-at-trx-commit=2
		log "mariadb started (pid $(head -n1 "$maria_pid"))"
	fi
	local deadline=$((SECONDS + 120))
	until maria_ready_socket; do
		pid_alive "$maria_pid" mariadbd || die_with_log "$maria_log" "mariadbd exited before it was ready"
		((SECONDS < deadline)) || die_with_log "$maria_log" "mariadb does not answer after 120s"
		sleep 0.5
	done
	maria_fix_root_tcp
	log "mariadb ready at $MYSQL_URL (sql_mode $(maria_tcp -e 'select @@sql_mode'))"
}

maria_down() { stop_pid "$maria_pid" mariadbd 60 mariadb; }

# ---------------------------------------------------------------- Redis

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_up() {
	if pid_alive "$redis_pid" redis-server; then
		log "redis already running (pid $(head -n1 "$redis_pid"))"
	else
		port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process this script did not start"
		rm -rf "$redis_dir"
		mkdir -p "$redis_dir/data"
		# No config file: /etc/redis belongs to the machine's own Redis.
		# The append-only file makes a write Redis confirmed survive a
		# restart of the server, as the sink's acknowledgement assumes.
		setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$redis_dir/data" \
			--appendonly yes --save '' --daemonize yes --pidfile "$redis_pid" --logfile "$redis_log" \
			</dev/null >"$redis_dir/start.log" 2>&1 7>&- 8>&- 9>&- || die_with_log "$redis_dir/start.log" "redis-server did not start"
	fi
	wait_until 30 redis_ready || die_with_log "$redis_log" "redis does not answer PING on 127.0.0.1:$REDIS_PORT"
	log "redis ready at $REDIS_URL"
}

redis_down() { stop_pid "$redis_pid" redis-server 30 redis; }

# ---------------------------------------------------------------- commands

lock_services() {
	mkdir -p "$state"
	exec 8>"$state/services.lock"
	flock -w 600 8 || die "another services.sh holds $state/services.lock"
}

# The background job that launches the Pulsar broker during `up` (see cmd_up).
launcher=

cmd_up() {
	local start=$SECONDS
	ensure_packages
	lock_services
	# The broker's JVM takes longest: launch it first (in the background while
	# Maven resolves jars, if it must) and set up the databases meanwhile.
	# Waiting for the launcher on every exit keeps `up` from returning while
	# it still runs.
	"$PULSAR_CTL" launch-fresh &
	launcher=$!
	trap '[[ -n $launcher ]] && wait "$launcher" 2>/dev/null || true' EXIT
	pg_up
	maria_up
	redis_up
	local rc=0
	wait "$launcher" || rc=$?
	launcher=
	((rc == 0)) || die "could not launch the Pulsar broker"
	# Kafka after Pulsar's launcher: never two Maven runs on one ~/.m2 at
	# once. Its JVM starts while Pulsar's is still getting ready.
	"$KAFKA_CTL" launch-fresh || die "could not launch the Kafka broker"
	"$PULSAR_CTL" wait
	"$KAFKA_CTL" wait
	"$here/pyenv.sh" >/dev/null || die "could not set up the Python test clients (scripts/pyenv.sh)"
	"$here/otelcol.sh" >/dev/null || die "could not build the test OpenTelemetry Collector (scripts/otelcol.sh)"
	log "all services up in $((SECONDS - start))s (state in $state)"
}

cmd_down() {
	[[ -d $state ]] || return 0
	lock_services
	"$KAFKA_CTL" stop
	"$PULSAR_CTL" stop
	maria_down
	pg_down
	redis_down
	log "all services down"
}

cmd_env() {
	local name value
	while IFS='=' read -r name value; do
		printf 'export %s=%s\n' "$name" "$(sq "$value")"
	done <<-EOF
		PIPELINE_TEST_PULSAR_URL=pulsar://127.0.0.1:16650
		PIPELINE_TEST_PULSAR_ADMIN_URL=http://127.0.0.1:18080
		PIPELINE_TEST_PULSAR_CTL=$PULSAR_CTL
		PIPELINE_TEST_KAFKA_BROKERS=$KAFKA_BROKERS
		PIPELINE_TEST_KAFKA_CTL=$KAFKA_CTL
		PIPELINE_TEST_POSTGRES_URL=$PG_URL
		PIPELINE_TEST_MYSQL_URL=$MYSQL_URL
		PIPELINE_TEST_REDIS_URL=$REDIS_URL
		PIPELINE_TEST_STATE=$state
		PIPELINE_CACHE=$PIPELINE_CACHE
		PIPELINE_TEST_PYTHON=$("$here/pyenv.sh")
		PIPELINE_TEST_OTELCOL=$("$here/otelcol.sh")
	EOF
}

cmd_status() {
	local ok=0
	if pg_running && pg_ready; then
		echo "postgres: ready at $PG_URL (pid $(head -n1 "$pg_data/postmaster.pid"))"
	else
		echo "postgres: not ready"
		ok=3
	fi
	if pid_alive "$maria_pid" mariadbd && maria_ready_tcp; then
		echo "mariadb: ready at $MYSQL_URL (pid $(head -n1 "$maria_pid"))"
	else
		echo "mariadb: not ready"
		ok=3
	fi
	if pid_alive "$redis_pid" redis-server && redis_ready; then
		echo "redis: ready at $REDIS_URL (pid $(head -n1 "$redis_pid"))"
	else
		echo "redis: not ready"
		ok=3
	fi
	"$PULSAR_CTL" status || ok=3
	"$KAFKA_CTL" status || ok=3
	return "$ok"
}

usage() {
	sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	[[ $# -eq 1 ]] || usage
	case $1 in
	up) cmd_up ;;
	down) cmd_down ;;
	env) cmd_env ;;
	status) cmd_status ;;
	redis-up)
		ensure_packages
		lock_services
		redis_up
		;;
	pulsar-restart) "$PULSAR_CTL" restart ;;
	pulsar-stop) "$PULSAR_CTL" stop ;;
	pulsar-start) "$PULSAR_CTL" start ;;
	kafka-restart) "$KAFKA_CTL" restart ;;
	kafka-stop) "$KAFKA_CTL" stop ;;
	kafka-start) "$KAFKA_CTL" start ;;
	*) usage ;;
	esac
}

main "$@"
