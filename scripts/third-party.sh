#!/usr/bin/env bash
# scripts/third-party.sh check|make: third_party/pulsar-client-go is
# upstream github.com/apache/pulsar-client-go at $version below, only the
# packages the pipeline builds (no tests, docs or tools), with
# third_party/pulsar-client-go.patch applied. go.mod's replace directive
# builds the pipeline (and bench/'s raw producers) with it. Nothing else in
# that tree may be edited by hand: change the patch, then run `make`.
#
#   check  rebuild the tree from upstream and the patch in a temporary
#          directory; exit non-zero, with the diff, when it differs
#   make   rewrite third_party/pulsar-client-go from upstream and the patch
#
# Why the patch, and when to drop it: third_party/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$repo/scripts/lib.sh"
# shellcheck disable=SC2034 # read by log() in lib.sh
LOG_TAG="third-party"

module=github.com/apache/pulsar-client-go
version=v0.21.0
packages=(oauth2 oauth2/cache oauth2/clock pulsar pulsar/auth pulsar/backoff pulsar/crypto
	pulsar/internal pulsar/internal/compression pulsar/internal/crypto
	pulsar/internal/pulsar_proto pulsar/log)
tree=third_party/pulsar-client-go
patch_file=third_party/pulsar-client-go.patch

# build DIR: upstream's packages and the patch, into DIR.
build() {
	local out=$1 tmp src pkg f
	tmp=$(mktemp -d)
	# Outside the repo, so go.mod's replace does not apply to the download.
	src=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	rmdir "$tmp"
	[[ -n $src && -d $src ]] || die "go mod download $module@$version gave no directory"
	for pkg in "${packages[@]}"; do
		mkdir -p "$out/$pkg"
		for f in "$src/$pkg"/*.go; do
			[[ $f == *_test.go ]] || cp "$f" "$out/$pkg/"
		done
	done
	cp "$src"/{LICENSE,NOTICE,go.mod,go.sum} "$out/"
	chmod -R u+w "$out"
	patch -s -p1 -d "$out" <"$patch_file" || die "$patch_file does not apply to $module@$version"
}

case ${1:-} in
check)
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	build "$out"
	if ! diff -r "$out" "$tree"; then
		die "$tree is not $module@$version with $patch_file (run scripts/third-party.sh make, or put the change in the patch)"
	fi
	log "$tree is $module@$version with $patch_file"
	;;
make)
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	build "$out"
	rm -rf "$tree"
	mkdir -p "$tree"
	cp -r "$out/." "$tree"
	log "wrote $tree from $module@$version and $patch_file"
	;;
*)
	echo "usage: scripts/third-party.sh check|make" >&2
	exit 2
	;;
esac
