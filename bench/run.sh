#!/usr/bin/env bash
# bench/run.sh ingest|sink [flags...]: run one benchmark against the test
# servers, starting them first (scripts/services.sh up) and stopping them
# afterwards unless they were already running.
#
#   ingest  bench/ingest: raw Pulsar producer vs the pipeline's
#           PublishStream/PublishBatch (ends with "ratio ingest_..." lines);
#           -bus kafka compares with a raw franz-go producer on Kafka
#   sink    bench/sink: hand-written PostgreSQL loader vs the pipeline's sink
#           (ends with "ratio sink_postgres ..."); -bus kafka compares with a
#           franz-go consumer-group loader with CopyFrom
#   registry bench/registry: schema lookups by id (GetSchema over gRPC and
#           Connect, the Confluent API's GET /schemas/ids/{id}) against the
#           same server's floor (WhoAmI, GET /confluent/)
#
# Extra flags go to the benchmark program (e.g. bench/run.sh ingest
# -duration 20s -rounds 3, bench/run.sh ingest -bus kafka). See bench/README.md
# for the figures measured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
	sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[[ $# -ge 1 ]] || usage
which=$1
shift
case $which in
ingest | sink | registry) ;;
*) usage ;;
esac
[[ -d bench/$which ]] || {
	echo "bench/$which does not exist" >&2
	exit 2
}

# Servers someone else started (a test run, a developer) stay up.
started=0
if ! scripts/services.sh status >/dev/null 2>&1; then
	scripts/services.sh up
	started=1
fi
stop_services() {
	if ((started)); then
		scripts/services.sh down || true
	fi
}
trap stop_services EXIT
eval "$(scripts/services.sh env)"

echo "# $(date -Is) on $(hostname): $(nproc) cores, $(go version)"
go run "./bench/$which" "$@"
