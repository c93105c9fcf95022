#!/usr/bin/env bash
# scripts/pyenv.sh: the Python clients the tests drive (grpcio,
# confluent-kafka, ...), installed from PyPI into a virtualenv cached under
# ${PIPELINE_CACHE:-$HOME/.cache/pipeline}/venv-<hash of the requirements>,
# so a changed requirements file gets a fresh one. Prints the venv's python.
#
#   scripts/pyenv.sh            create the venv if needed, print its python
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
LOG_TAG=python

req=tests/python/requirements.txt
hash=$(sha256sum "$req" | cut -c1-12)
venv=$PIPELINE_CACHE/venv-$hash
if [[ ! -x $venv/bin/python || ! -f $venv/.complete ]]; then
	have python3 || die "python3 is missing"
	log "installing $req into $venv"
	rm -rf "$venv"
	mkdir -p "$PIPELINE_CACHE"
	python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
	"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2 || die "pip install -r $req failed"
	touch "$venv/.complete"
fi
echo "$venv/bin/python"
