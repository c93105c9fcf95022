#!/usr/bin/env bash
# scripts/test.sh: the whole test suite, on a fresh machine or a developer's.
#
# Starts PostgreSQL, MariaDB, Redis, Pulsar and Kafka on their own ports (scripts/services.sh
# up, installing what is missing and building the OpenTelemetry Collector of
# tools/otelcol that the tracing tests export to), then runs, in order:
#   buf lint, a check that the committed generated code (gen/, and the
#   SDKs' sdk/ts/src/gen and sdk/python/gen) is what buf generates,
#   buf breaking against the previous commit, a check that third_party/ is
#   upstream and its patch (scripts/third-party.sh), go vet, go test -race with the
#   PIPELINE_TEST_* variables set (packages whose tests restart the broker
#   run after the others, one at a time), each go test fuzz target for
#   PIPELINE_FUZZ_TIME (10s by default), scripts/test-web.sh when the web
#   dashboard exists, and scripts/test-sdk.sh (the TypeScript and Python SDKs).
# Every step runs even when an earlier one failed; the servers are stopped on
# any exit; the exit status is non-zero when any step failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$repo/scripts/lib.sh"
# shellcheck disable=SC2034 # read by log() in lib.sh
LOG_TAG="test"

BUF_MODULE=github.com/bufbuild/buf/cmd/buf@v1.75.0

passed=()
failed=()
# The subshell running the current step, so a signal can stop it.
step_pid=

# run_step NAME CMD...: one announced, timed step. It runs in a subshell
# with `set -e` in force (a function called from `if` or `||` would run with
# -e silently off) and its failure is recorded, not fatal. The subshell runs
# in the background so that a SIGTERM interrupts `wait` at once; bash would
# otherwise act on it only after a 40-minute go test ends.
run_step() {
	local name=$1 start=$SECONDS rc=0
	shift
	printf '\n==== %s\n' "$name"
	set +e
	(
		set -e
		"$@"
	) &
	step_pid=$!
	wait "$step_pid"
	rc=$?
	step_pid=
	set -e
	if ((rc == 0)); then
		passed+=("$name")
		printf '==== %s: ok (%ds)\n' "$name" $((SECONDS - start))
	else
		failed+=("$name")
		printf '==== %s: FAILED, exit %d (%ds)\n' "$name" "$rc" $((SECONDS - start))
	fi
}

# buf: pinned, built and cached by the Go toolchain (no BSR access needed).
buf() { go run "$BUF_MODULE" "$@"; }

step_buf_lint() { buf lint; }

# generated: "template output-dir" for each buf template whose output is
# committed: the Go code, the TypeScript SDK's and the Python SDK's. (The
# dashboard's web/src/gen is checked by scripts/test-web.sh.)
generated=(
	"buf.gen.yaml gen"
	"sdk/ts/buf.gen.yaml sdk/ts/src/gen"
	"sdk/python/buf.gen.yaml sdk/python/gen"
)

# step_buf_generate: regenerate from proto/ in a scratch copy and compare
# with the committed output of each template (generated), so stale or
# hand-edited generated code fails the run without touching the work tree.
# The SDK templates run local plugins: protoc-gen-es from sdk/ts/node_modules
# (npm ci here when it is missing) and grpcio-tools' protoc from the
# virtualenv of scripts/pyenv.sh.
step_buf_generate() {
	# Not local: the EXIT trap of this step's subshell still needs it.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	local f entry template out rc=0
	for f in buf.yaml buf.gen.yaml buf.lock buf.work.yaml go.mod go.sum proto; do
		[[ -e $f ]] && cp -R "$f" "$tmp/"
	done
	[[ -x sdk/ts/node_modules/.bin/protoc-gen-es ]] || (cd sdk/ts && npm ci --no-audit --no-fund --loglevel=error)
	mkdir -p "$tmp/sdk/ts" "$tmp/sdk/python"
	cp sdk/ts/buf.gen.yaml "$tmp/sdk/ts/"
	ln -s "$repo/sdk/ts/node_modules" "$tmp/sdk/ts/node_modules"
	cp sdk/python/buf.gen.yaml "$tmp/sdk/python/"
	ln -s "$repo/sdk/python/protoc-gen-python-grpcio" "$tmp/sdk/python/"
	for entry in "${generated[@]}"; do
		template=${entry% *}
		out=${entry#* }
		(cd "$tmp" && buf generate --template "$template")
		if ! diff -r -u "$out" "$tmp/$out" >"$tmp/gen.diff"; then
			echo "$out/ differs from what buf generates from proto/ (run: go run $BUF_MODULE generate --template $template):"
			head -n 80 "$tmp/gen.diff"
			rc=1
			continue
		fi
		# The comparison above used the work tree; make sure it is also
		# what is committed (CI's fresh clone always is).
		local changes
		changes=$(git status --porcelain --untracked-files=all -- "$out/")
		if [[ -n $changes ]]; then
			echo "$out/ has changes that are not committed:"
			echo "$changes"
			if [[ ${CI:-} == true ]]; then
				rc=1
				continue
			fi
			echo "(not a failure outside CI; commit them with the proto/ change)"
		fi
		echo "$out/ matches buf generate --template $template"
	done
	return "$rc"
}

# step_buf_breaking: the API may only change compatibly from one commit to
# the next. A shallow clone or a first commit has nothing to compare with.
step_buf_breaking() {
	if ! git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
		echo "skipped: no commit before HEAD in this clone (shallow clone or first commit)"
		return 0
	fi
	if ! git cat-file -e 'HEAD~1:proto' 2>/dev/null; then
		echo "skipped: HEAD~1 has no proto/"
		return 0
	fi
	local against=".git#ref=HEAD~1"
	# Without buf.yaml in HEAD~1, compare the proto/ directory itself.
	git cat-file -e 'HEAD~1:buf.yaml' 2>/dev/null || against=".git#ref=HEAD~1,subdir=proto"
	echo "buf breaking --against '$against' ($(git log -1 --format='%h %s' HEAD~1))"
	buf breaking --against "$against"
}

step_third_party() { scripts/third-party.sh check; }

step_go_vet() { go vet ./...; }

# broker_fault_packages: packages whose tests stop or restart a shared
# broker (through testenv.PulsarCtl / PIPELINE_TEST_PULSAR_CTL, or
# testenv.KafkaCtl / PIPELINE_TEST_KAFKA_CTL). go test runs two packages at a
# time; any other package using the broker while one of these restarts it
# would fail with "connection refused".
broker_fault_packages() {
	local pkg dir
	go list -e -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
		if grep -qsE 'testenv\.(Pulsar|Kafka)Ctl|PIPELINE_TEST_(PULSAR|KAFKA)_CTL' "$dir"/*_test.go; then
			echo "$pkg"
		fi
	done
}

# go_test [-p 1] PKG...: output goes straight through (the runner's last
# lines are what a reader needs) and into the log; the status is go test's own.
go_test() {
	go test -race -count=1 -timeout 40m "$@" 2>&1 9>&- | tee -a "$go_test_log" || return "${PIPESTATUS[0]}"
}

# step_go_test: all packages; the ones that restart the broker run after the
# others, one package at a time.
step_go_test() {
	go_test_log=$PIPELINE_TEST_STATE/logs/go-test.log
	mkdir -p "$(dirname "$go_test_log")"
	: >"$go_test_log"
	local rc=0 rc2=0
	local -a faulty=() rest=()
	mapfile -t faulty < <(broker_fault_packages)
	if ((${#faulty[@]} == 0)); then
		echo "go test -race -count=1 -timeout 40m ./..."
		go_test ./... || rc=$?
	else
		mapfile -t rest < <(go list -e ./... | grep -vxF -f <(printf '%s\n' "${faulty[@]}"))
		echo "go test -race -count=1 -timeout 40m: ${#rest[@]} packages, then, one at a time, the ones that stop/restart the broker: ${faulty[*]}"
		if ((${#rest[@]})); then
			go_test "${rest[@]}" || rc=$?
		fi
		echo "---- one at a time: ${faulty[*]}"
		go_test -p 1 "${faulty[@]}" || rc2=$?
		((rc != 0)) || rc=$rc2
	fi
	if ((rc != 0)); then
		echo "---- failures (full output in $go_test_log):"
		grep -E '^(--- FAIL|FAIL|panic:)' "$go_test_log" | head -n 60 || true
	fi
	return "$rc"
}

# fuzz_targets: "package target" for every go test fuzz target (func
# FuzzXxx in a _test.go file).
fuzz_targets() {
	local pkg dir target
	go list -e -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
		{ grep -hoE '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null || true; } | while read -r _ target; do
			echo "$pkg $target"
		done
	done
}

# step_fuzz: each fuzz target searches for new failing inputs for
# PIPELINE_FUZZ_TIME (10s by default), one target per go test run (go test
# -fuzz takes one). The committed corpus (testdata/fuzz/) is already
# replayed as plain tests by step_go_test. A failing input is written to
# the package's testdata/fuzz/<target>/, to be committed with the fix.
step_fuzz() {
	local fuzztime=${PIPELINE_FUZZ_TIME:-10s} pkg target rc=0
	local -a targets=()
	mapfile -t targets < <(fuzz_targets)
	if ((${#targets[@]} == 0)); then
		echo "no fuzz targets"
		return 0
	fi
	for target in "${targets[@]}"; do
		pkg=${target% *}
		target=${target#* }
		echo "---- $target ($pkg) for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" || rc=$?
	done
	return "$rc"
}

step_web() { bash scripts/test-web.sh; }

step_sdk() { bash scripts/test-sdk.sh; }

stop_services() {
	local rc=$?
	trap - EXIT
	echo
	scripts/services.sh down || log "services.sh down failed; see $PIPELINE_TEST_STATE"
	exit "$rc"
}

# on_signal NAME STATUS: stop the running step (go test and the test
# binaries it started) and exit; the EXIT trap then stops the servers.
on_signal() {
	log "caught SIG$1: stopping the running step"
	[[ -n $step_pid ]] && kill_tree "$step_pid"
	exit "$2"
}

main() {
	local start=$SECONDS
	mkdir -p "$PIPELINE_TEST_STATE"
	# The servers use fixed ports: two runs at once would share them and one
	# run's `down` would pull them from under the other.
	exec 9>"$PIPELINE_TEST_STATE/test.lock"
	flock -n 9 || die "another scripts/test.sh is running (lock $PIPELINE_TEST_STATE/test.lock)"

	log "repo $repo at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(go version)"
	trap stop_services EXIT
	trap 'on_signal INT 130' INT
	trap 'on_signal TERM 143' TERM

	printf '\n==== services up\n'
	if ! scripts/services.sh up; then
		die "the test servers did not start; nothing else was run"
	fi
	eval "$(scripts/services.sh env)"

	run_step "buf lint" step_buf_lint
	run_step "buf generate check (gen/ up to date)" step_buf_generate
	run_step "buf breaking (against HEAD~1)" step_buf_breaking
	run_step "third_party is upstream and its patch (scripts/third-party.sh check)" step_third_party
	run_step "go vet" step_go_vet
	run_step "go test -race" step_go_test
	run_step "go test -fuzz (${PIPELINE_FUZZ_TIME:-10s} per target)" step_fuzz
	if [[ -f web/package.json ]]; then
		if [[ -f scripts/test-web.sh ]]; then
			run_step "web tests (scripts/test-web.sh)" step_web
		else
			printf '\n==== web: web/package.json exists but there is no scripts/test-web.sh; no web tests run\n'
		fi
	else
		printf '\n==== web: no web/package.json; no web tests\n'
	fi
	run_step "SDK tests: TypeScript and Python (scripts/test-sdk.sh)" step_sdk

	local which=
	if ((${#failed[@]})); then
		which=$(printf '%s; ' "${failed[@]}")
		which=" (failed: ${which%; })"
	fi
	printf '\n==== SUMMARY: %d steps passed, %d failed%s, %ds in all\n' \
		"${#passed[@]}" "${#failed[@]}" "$which" $((SECONDS - start))
	((${#failed[@]} == 0))
}

main "$@"
