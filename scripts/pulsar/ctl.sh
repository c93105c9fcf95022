#!/usr/bin/env bash
# ctl.sh start|stop|restart|status: the test suite's Pulsar standalone broker
# (pulsar://127.0.0.1:16650, admin http://127.0.0.1:18080).
#
# Fault tests run this script through PIPELINE_TEST_PULSAR_CTL (see
# internal/testenv): start and restart keep the data directory, so messages
# and cursors survive; stop is graceful with a SIGKILL after 30 s.
# scripts/services.sh also uses two internal commands: `launch-fresh` (empty
# the data dir and spawn the broker without waiting) and `wait` (until ready).
#
# The broker's classpath comes from Maven Central (pom.xml next to this file)
# and is cached under $PIPELINE_CACHE; data, logs and the pid live under
# $PIPELINE_TEST_STATE/pulsar.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$here/../lib.sh"
# shellcheck disable=SC2034 # read by log() in lib.sh
LOG_TAG=pulsar

BROKER_PORT=16650
ADMIN_PORT=18080
# The embedded bookie's port; fixed so its bookie id (127.0.0.1:port) stays
# the same across restarts (see standalone.conf, allowEphemeralPorts).
BOOKIE_PORT=13181
# Cold JVM on 2 busy cores; a restart during a loaded test run is slow too.
READY_TIMEOUT=${PIPELINE_PULSAR_READY_TIMEOUT:-240}
STOP_GRACE=30
# Extra JVM flags for the broker (split on spaces), for measuring one garbage
# collector against another (e.g. -XX:+UseZGC); empty: the JVM's default, G1.
GC_FLAGS=${PIPELINE_PULSAR_GC_FLAGS-}

dir=$PIPELINE_TEST_STATE/pulsar
pidfile=$dir/pulsar.pid
logfile=$dir/logs/standalone.out
admin=http://127.0.0.1:$ADMIN_PORT
# Keyed on the pom's content: editing versions there resolves a new classpath.
lib=$PIPELINE_CACHE/pulsar-$(sha256sum "$here/pom.xml" | cut -c1-12)/lib

running() { pid_alive "$pidfile" PulsarStandaloneStarter; }

# ready: the admin API answers and lists the namespace standalone creates
# last, so clients can use public/default.
ready() {
	local out
	out=$(curl -sf --max-time 5 "$admin/admin/v2/namespaces/public" 2>/dev/null) || return 1
	[[ $out == *'"public/default"'* ]]
}

# resolve_jars: fetch the broker's jars once into the cache. Maven writes
# into a temp dir first so an interrupted download never looks complete.
resolve_jars() {
	[[ -f $lib/.complete ]] && return 0
	have java || die "java not found (scripts/services.sh up installs it)"
	have mvn || die "mvn not found (scripts/services.sh up installs it)"
	local tmp=$lib.tmp.$$ mvnlog=$dir/logs/mvn.log start=$SECONDS
	log "resolving Pulsar's jars from Maven Central into $lib (cached for later runs)"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! mvn -B -ntp -f "$here/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" -DincludeScope=runtime </dev/null >"$mvnlog" 2>&1; then
		rm -rf "$tmp"
		die_with_log "$mvnlog" "mvn could not resolve the broker's jars"
	fi
	touch "$tmp/.complete"
	rm -rf "$lib"
	mv "$tmp" "$lib"
	log "resolved $(find "$lib" -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

# launch: spawn the broker on the existing data dir; does not wait.
launch() {
	if running; then
		log "already running (pid $(head -n1 "$pidfile"))"
		return 0
	fi
	local port
	for port in $BROKER_PORT $ADMIN_PORT $BOOKIE_PORT; do
		if port_open "$port"; then
			die "port $port is taken by a process this script did not start; stop it or free the port"
		fi
	done
	resolve_jars
	mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
	cp "$here/standalone.conf" "$dir/standalone.conf"
	# JVM flags from Pulsar's own launcher: heap as in the project recipe,
	# module opens that Netty/BookKeeper need on Java 17.
	local -a jvm=(
		-Xms512m -Xmx1g -XX:MaxDirectMemorySize=1g
		--add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED
		--add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED
		--add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/sun.net=ALL-UNNAMED
		--add-opens java.management/sun.management=ALL-UNNAMED
		--add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
		-Dio.netty.tryReflectionSetAccessible=true
		-Dpulsar.log.dir="$dir/logs"
		# Native libraries (RocksDB, Netty) unpack here, not all over /tmp.
		-Djava.io.tmpdir="$dir/tmp"
	)
	local -a gc
	read -ra gc <<<"$GC_FLAGS"
	jvm+=("${gc[@]}")
	printf '\n==== %s start\n' "$(date -Is)" >>"$logfile"
	# The working dir is the data dir: standalone keeps its metadata and
	# bookie data in paths relative to it.
	spawn_daemon "$pidfile" "$logfile" "$dir/data" \
		java "${jvm[@]}" -cp "$lib/*" org.apache.pulsar.PulsarStandaloneStarter \
		--config "$dir/standalone.conf" --bookkeeper-port "$BOOKIE_PORT" \
		--no-functions-worker --no-stream-storage
	log "started (pid $(head -n1 "$pidfile")), data in $dir/data, log $logfile"
}

# wait_ready: until the admin API is ready; fails early if the JVM died.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) start=$SECONDS
	until ready; do
		running || die_with_log "$logfile" "the broker exited before it was ready"
		((SECONDS < deadline)) || die_with_log "$logfile" "the broker is not ready after ${READY_TIMEOUT}s"
		sleep 1
	done
	log "ready at pulsar://127.0.0.1:$BROKER_PORT and $admin (pid $(head -n1 "$pidfile"), waited $((SECONDS - start))s)"
}

stop() {
	stop_pid "$pidfile" PulsarStandaloneStarter "$STOP_GRACE" "pulsar broker"
	# The next start needs the ports; the JVM has closed them once it exits,
	# this only guards against a slow kernel.
	wait_until 10 ports_closed || die "ports $BROKER_PORT/$ADMIN_PORT still open after the broker exited"
}

ports_closed() { ! port_open "$BROKER_PORT" && ! port_open "$ADMIN_PORT"; }

usage() {
	echo "usage: $0 start|stop|restart|status" >&2
	exit 2
}

main() {
	[[ $# -eq 1 ]] || usage
	mkdir -p "$dir/logs"
	if [[ $1 == status ]]; then
		if running && ready; then
			echo "pulsar: ready at pulsar://127.0.0.1:$BROKER_PORT (pid $(head -n1 "$pidfile"))"
			return 0
		elif running; then
			echo "pulsar: running (pid $(head -n1 "$pidfile")) but not ready"
		else
			echo "pulsar: stopped"
		fi
		return 3
	fi
	# One control command at a time: a restart must not interleave with a
	# start from `services.sh up`.
	exec 7>"$dir/ctl.lock"
	flock -w 600 7 || die "another ctl.sh holds $dir/ctl.lock"
	case $1 in
	start)
		launch
		wait_ready
		;;
	stop) stop ;;
	restart)
		stop
		launch
		wait_ready
		;;
	launch-fresh)
		if running; then
			log "already running (pid $(head -n1 "$pidfile")), keeping its data"
			return 0
		fi
		rm -rf "$dir/data" "$dir/tmp" "$dir/logs"
		mkdir -p "$dir/logs"
		launch
		;;
	wait) wait_ready ;;
	*) usage ;;
	esac
}

main "$@"
