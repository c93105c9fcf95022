# shellcheck shell=bash
# scripts/lib.sh: helpers shared by scripts/services.sh, scripts/pulsar/ctl.sh
# and scripts/test.sh. Source it; it only defines functions and the two
# directories below.
#
# Lock file descriptors: test.sh holds fd 9, services.sh fd 8, ctl.sh fd 7,
# otelcol.sh fd 6 while it builds (flock). Daemons must never inherit them, or they would hold the locks
# for their whole life; spawn_daemon closes them.

# Where servers keep data, logs and pids; `up` empties the data dirs.
PIPELINE_TEST_STATE=${PIPELINE_TEST_STATE:-/tmp/pipeline-test}
# Downloads worth keeping between runs (Pulsar's jars).
PIPELINE_CACHE=${PIPELINE_CACHE:-${HOME:-/root}/.cache/pipeline}
export PIPELINE_TEST_STATE PIPELINE_CACHE

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${LOG_TAG:-services}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# die_with_log FILE MESSAGE: fail and show why, from the server's own log.
die_with_log() {
	local file=$1
	shift
	log "ERROR: $*"
	if [[ -f $file ]]; then
		log "last 40 lines of $file:"
		tail -n 40 "$file" >&2
	fi
	exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# port_open PORT: true when something accepts TCP connections on
# 127.0.0.1:PORT. bash's /dev/tcp needs no ss/netstat on a fresh machine.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_gone PID: true when PID has exited. A zombie counts as gone: daemons
# started with setsid are reparented to PID 1, which may never reap them.
pid_gone() {
	local state
	[[ -r /proc/$1/stat ]] || return 0
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
	[[ -z $state || $state == Z ]]
}

# pid_alive PIDFILE PATTERN: true when the pid in PIDFILE runs and its
# command line contains PATTERN, so a recycled pid is never mistaken for
# (or killed as) one of our servers.
pid_alive() {
	local file=$1 pattern=$2 pid cmdline
	[[ -s $file ]] || return 1
	pid=$(head -n1 "$file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	! pid_gone "$pid" || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$pattern"* ]]
}

# wait_until SECONDS CMD...: poll CMD until it succeeds; false after the
# deadline.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
}

# spawn_daemon PIDFILE LOGFILE WORKDIR CMD...: start CMD as a daemon in its
# own session (a Ctrl-C in the terminal must not kill servers behind
# `down`'s back), with stdin/stdout/stderr detached from the caller (a Go
# test that runs ctl.sh must not wait on a pipe the broker holds open), and
# record its pid.
spawn_daemon() {
	local pidfile=$1 logfile=$2 workdir=$3
	shift 3
	rm -f "$pidfile"
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid -f bash -c 'cd "$2" && echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && shift 2 && exec "$@"' \
		spawn "$pidfile" "$workdir" "$@" </dev/null >>"$logfile" 2>&1 7>&- 8>&- 9>&-
	wait_until 10 test -s "$pidfile" || die_with_log "$logfile" "could not start $1"
}

# stop_pid PIDFILE PATTERN GRACE NAME: SIGTERM, then SIGKILL after GRACE
# seconds; returns once the process is gone.
stop_pid() {
	local pidfile=$1 pattern=$2 grace=$3 name=$4 pid
	if ! pid_alive "$pidfile" "$pattern"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(head -n1 "$pidfile")
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until "$grace" pid_gone "$pid"; then
		log "$name (pid $pid) still running after ${grace}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 10 pid_gone "$pid" || die "$name (pid $pid) survived SIGKILL"
	fi
	rm -f "$pidfile"
}

# descendants PID: the processes PID started, their children, and so on.
# (Daemons started with spawn_daemon are not among them: setsid -f hands
# them to PID 1.)
descendants() {
	local child
	for child in $(cat /proc/"$1"/task/*/children 2>/dev/null || pgrep -P "$1"); do
		echo "$child"
		descendants "$child"
	done
}

# kill_tree PID: SIGTERM PID and all its descendants.
kill_tree() {
	local -a pids
	mapfile -t pids < <(descendants "$1")
	kill -TERM "$1" "${pids[@]}" 2>/dev/null || true
}

# sq VALUE: VALUE quoted for the shell, for `export` lines meant for eval.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
