#!/usr/bin/env bash
# scripts/test-web.sh: the dashboard's suite (web/), run by scripts/test.sh
# when web/package.json exists, or on its own from anywhere in the repo.
#
#   1. npm ci in web/ (the npm registry only; versions from package-lock.json)
#   2. regenerate the TypeScript API client from proto/ with buf and the
#      local protoc-gen-es; fail when it differs from what is committed
#   3. build web/dist with Vite; fail when it differs from what is committed
#      (the Go binary embeds web/dist, so it must be the build of the sources)
#   4. build the pipeline binary and run the unit tests and the browser
#      end-to-end tests (node --test; Debian's Chromium through
#      playwright-core, no browser download). Screenshots go to
#      artifacts/screenshots/, the server's log to artifacts/.
#
# Needs Go, Node.js >= 20.19 and /usr/bin/chromium (scripts/services.sh
# installs Chromium; PIPELINE_TEST_CHROMIUM names another binary). The
# browser tests start their own pipeline on a free port and need no other
# server. Stops at the first failing step, exit status non-zero.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
BUF_MODULE=github.com/bufbuild/buf/cmd/buf@v1.75.0

step() { printf '\n==== web: %s\n' "$*"; }
fail() {
	printf '==== web: FAILED: %s\n' "$*" >&2
	exit 1
}

# committed PATH...: the paths have no change against HEAD, untracked files
# included; prints what differs otherwise.
committed() {
	local changes
	changes=$(git status --porcelain --untracked-files=all -- "$@")
	if [[ -n $changes ]]; then
		echo "$changes"
		git --no-pager diff --stat HEAD -- "$@" || true
		git --no-pager diff HEAD -- "$@" | head -n 60 || true
		return 1
	fi
}

node_ok() {
	local v
	v=$(node -p 'process.versions.node' 2>/dev/null) || return 1
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	((major > 20 || (major == 20 && minor >= 19)))
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "tools"
command -v go >/dev/null || fail "go is not installed"
command -v node >/dev/null || fail "node is not installed (Node.js >= 20.19)"
node_ok || fail "Node.js $(node --version) is too old; Vite 7 needs >= 20.19"
chromium=${PIPELINE_TEST_CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || fail "no Chromium at $chromium (scripts/services.sh up installs Debian's chromium)"
echo "go: $(go version | cut -d' ' -f3), node: $(node --version), npm: $(npm --version), chromium: $("$chromium" --version 2>/dev/null | tail -n 1)"

step "npm ci"
(cd web && npm ci --no-audit --no-fund --loglevel=error)

step "generated TypeScript (web/src/gen) matches proto/"
go run "$BUF_MODULE" generate --template web/buf.gen.yaml
committed web/src/gen || fail "web/src/gen differs from what buf generates from proto/ (run: cd web && npm run generate, and commit)"
echo "web/src/gen is what buf generates"

step "build (web/dist) matches the sources"
(cd web && npm run --silent build)
committed web/dist || fail "web/dist differs from the build of web/src (run: cd web && npm run build, and commit web/dist)"
echo "web/dist is the build of the sources"

step "go build ./cmd/pipeline (embeds web/dist)"
go build -o "$tmp/pipeline" ./cmd/pipeline
echo "built $tmp/pipeline"

step "unit and browser end-to-end tests (node --test)"
mkdir -p artifacts/screenshots
cd web
PIPELINE_BIN="$tmp/pipeline" PIPELINE_TEST_CHROMIUM="$chromium" \
	node --test --test-concurrency=1 test/unit/ test/e2e/ 2>&1 | tee "$repo/artifacts/web-test.log"
