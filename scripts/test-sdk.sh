#!/usr/bin/env bash
# scripts/test-sdk.sh: the TypeScript and Python SDKs' suites (sdk/ts,
# sdk/python), run by scripts/test.sh, or on its own from anywhere in the
# repo. (The Go SDK, sdk/go/pipeline, is a package of the module: go test
# runs it. scripts/test.sh's generated-code step checks sdk/ts/src/gen and
# sdk/python/gen against buf.)
#
#   1. build the pipeline binary once: each suite starts one `pipeline
#      serve` on the embedded defaults, and its last test kills it
#      (SIGKILL) and starts it again on the same data dir
#   2. TypeScript: npm ci in sdk/ts (the npm registry only; versions from
#      package-lock.json), tsc, node --test
#   3. Python: the cached virtualenv of scripts/pyenv.sh (grpcio, pytest,
#      ... from PyPI), pytest
#
# Needs Go, Node.js >= 20.19, python3 and sqlite3 (scripts/services.sh up
# installs Debian's sqlite3; the TypeScript tests read the SQLite sink
# through it). Runs both suites; the exit status is non-zero when either
# failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

step() { printf '\n==== sdk: %s\n' "$*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "go build ./cmd/pipeline"
go build -o "$tmp/pipeline" ./cmd/pipeline
export PIPELINE_BIN=$tmp/pipeline

rc=0
step "TypeScript (sdk/ts): npm ci, tsc, node --test"
if ! (cd sdk/ts && npm ci --no-audit --no-fund --loglevel=error && npm test); then
	printf '==== sdk: TypeScript FAILED\n' >&2
	rc=1
fi

step "Python (sdk/python): pytest"
python=$(scripts/pyenv.sh)
if ! (cd sdk/python && "$python" -m pytest -q -p no:cacheprovider); then
	printf '==== sdk: Python FAILED\n' >&2
	rc=1
fi
exit "$rc"
