#!/usr/bin/env bash
# ctl.sh start|stop|restart|status: the test suite's Apache Kafka broker in
# KRaft mode (one process, broker and controller): clients on
# 127.0.0.1:19092, controller on 127.0.0.1:19093.
#
# start and restart keep the data directory (topics, records and committed
# offsets survive); stop is graceful with a SIGKILL after 30 s.
# scripts/services.sh also uses `launch-fresh` (empty the data dir, format
# it and spawn the broker without waiting) and `wait` (until ready).
#
# The classpath comes from Maven Central (pom.xml next to this file) and is
# cached under $PIPELINE_CACHE; data, logs and the pid live under
# $PIPELINE_TEST_STATE/kafka.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$here/../lib.sh"
# shellcheck disable=SC2034 # read by log() in lib.sh
LOG_TAG=kafka

BROKER_PORT=19092
CONTROLLER_PORT=19093
READY_TIMEOUT=${PIPELINE_KAFKA_READY_TIMEOUT:-180}
STOP_GRACE=30

dir=$PIPELINE_TEST_STATE/kafka
pidfile=$dir/kafka.pid
logfile=$dir/logs/kafka.out
lib=$PIPELINE_CACHE/kafka-$(sha256sum "$here/pom.xml" | cut -c1-12)/lib

running() { pid_alive "$pidfile" kafka.Kafka; }

# resolve_jars: fetch the broker's jars once into the cache. Maven writes
# into a temp dir first so an interrupted download never looks complete.
resolve_jars() {
	[[ -f $lib/.complete ]] && return 0
	have java || die "java not found (scripts/services.sh up installs it)"
	have mvn || die "mvn not found (scripts/services.sh up installs it)"
	local tmp=$lib.tmp.$$ mvnlog=$dir/logs/mvn.log start=$SECONDS
	log "resolving Kafka's jars from Maven Central into $lib (cached for later runs)"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! mvn -B -ntp -f "$here/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" -DincludeScope=runtime </dev/null >"$mvnlog" 2>&1; then
		rm -rf "$tmp"
		die_with_log "$mvnlog" "mvn could not resolve Kafka's jars"
	fi
	touch "$tmp/.complete"
	rm -rf "$lib"
	mv "$tmp" "$lib"
	log "resolved $(find "$lib" -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

# format: give an empty data dir a cluster id (once; KRaft refuses to start
# on an unformatted log dir).
format() {
	[[ -f $dir/data/meta.properties ]] && return 0
	local id
	id=$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
	[[ -n $id ]] || die "kafka-storage random-uuid printed nothing"
	java -cp "$lib/*" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
		>"$dir/logs/format.log" 2>&1 || die_with_log "$dir/logs/format.log" "formatting $dir/data failed"
}

launch() {
	if running; then
		log "already running (pid $(head -n1 "$pidfile"))"
		return 0
	fi
	local port
	for port in $BROKER_PORT $CONTROLLER_PORT; do
		port_open "$port" && die "port $port is taken by a process this script did not start; stop it or free the port"
	done
	resolve_jars
	mkdir -p "$dir/data" "$dir/logs"
	sed "s#DATA_DIR#$dir/data#" "$here/server.properties" >"$dir/server.properties"
	format
	printf '\n==== %s start\n' "$(date -Is)" >>"$logfile"
	# Kafka 4 ships no log4j 1 binding; the log4j2 jars in pom.xml give it
	# one, and the default configuration logs to stdout (the log file).
	spawn_daemon "$pidfile" "$logfile" "$dir" \
		java -Xms256m -Xmx512m -XX:+UseSerialGC -cp "$lib/*" kafka.Kafka "$dir/server.properties"
	log "started (pid $(head -n1 "$pidfile")), data in $dir/data, log $logfile"
}

wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) start=$SECONDS
	until port_open "$BROKER_PORT"; do
		running || die_with_log "$logfile" "the broker exited before it was ready"
		((SECONDS < deadline)) || die_with_log "$logfile" "the broker is not ready after ${READY_TIMEOUT}s"
		sleep 0.5
	done
	log "ready at 127.0.0.1:$BROKER_PORT (pid $(head -n1 "$pidfile"), waited $((SECONDS - start))s)"
}

stop() {
	stop_pid "$pidfile" kafka.Kafka "$STOP_GRACE" "kafka broker"
	wait_until 10 ports_closed || die "ports $BROKER_PORT/$CONTROLLER_PORT still open after the broker exited"
}

ports_closed() { ! port_open "$BROKER_PORT" && ! port_open "$CONTROLLER_PORT"; }

usage() {
	echo "usage: $0 start|stop|restart|status" >&2
	exit 2
}

main() {
	[[ $# -eq 1 ]] || usage
	mkdir -p "$dir/logs"
	if [[ $1 == status ]]; then
		if running && port_open "$BROKER_PORT"; then
			echo "kafka: ready at 127.0.0.1:$BROKER_PORT (pid $(head -n1 "$pidfile"))"
			return 0
		elif running; then
			echo "kafka: running (pid $(head -n1 "$pidfile")) but not ready"
		else
			echo "kafka: stopped"
		fi
		return 3
	fi
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
		rm -rf "$dir/data" "$dir/logs"
		mkdir -p "$dir/logs"
		launch
		;;
	wait) wait_ready ;;
	*) usage ;;
	esac
}

main "$@"
