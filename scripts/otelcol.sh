#!/usr/bin/env bash
# scripts/otelcol.sh: the OpenTelemetry Collector the tracing tests export
# to, built with the Go toolchain from tools/otelcol (its own module: the
# OTLP receiver, the batch processor, the file exporter) into
# ${PIPELINE_CACHE:-$HOME/.cache/pipeline}/otelcol-<hash of tools/otelcol>/,
# so a changed go.mod, go.sum or .go file gets a fresh build and a fresh
# clone on the same machine reuses the last one. Prints the binary's path.
#
#   scripts/otelcol.sh          build the collector if needed, print its path
#
# Keep every collector module at one release (core v0.165.0 / v1.71.0,
# contrib v0.165.1). In tools/otelcol run `go mod tidy -e`: a test-only
# dependency of the file exporter (otlpencodingextension v0.165.1) is not
# served by the module proxy here; the build does not need it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
# shellcheck disable=SC2034 # read by log() in lib.sh
LOG_TAG=otelcol

src=tools/otelcol
hash=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)
dir=$PIPELINE_CACHE/otelcol-$hash
bin=$dir/otelcol
if [[ ! -x $bin ]]; then
	have go || die "go is missing"
	mkdir -p "$dir"
	# Two callers at once (services.sh up and env) build it once. fd 6:
	# lib.sh's list of lock descriptors.
	exec 6>"$dir/build.lock"
	flock -w 900 6 || die "another build holds $dir/build.lock"
	if [[ ! -x $bin ]]; then
		log "building $src into $bin (a cold build takes minutes)"
		start=$SECONDS
		(cd "$src" && go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$bin.tmp" .) >&2 ||
			die "go build in $src failed"
		mv "$bin.tmp" "$bin"
		log "built $bin in $((SECONDS - start))s"
	fi
	exec 6>&-
fi
echo "$bin"
