#!/usr/bin/env bash
# ---
# owner = "search-infra (#search-oncall)"
# description = "Incident one-off: retries shard allocations that failed too many times (UNASSIGNED with reason ALLOCATION_FAILED, e.g. after a disk-full event) with POST _cluster/reroute?retry_failed=true, then waits up to WAIT_TIMEOUT_SECONDS (default 1800) for them to be assigned. Env: ELASTICSEARCH_URL, WAIT_TIMEOUT_SECONDS, POLL_INTERVAL_SECONDS (default 15), DRY_RUN."
# timeout = "45m"
# retries = 1
# ---
#
# After index.allocation.max_retries failed attempts Elasticsearch stops trying to
# allocate a shard until it is told to retry. Idempotent: when no shard is unassigned
# for ALLOCATION_FAILED nothing is sent; a second reroute is harmless anyway. When a
# shard fails again, GET _cluster/allocation/explain says why.
#
# Exit codes: 0 all failed allocations recovered (or nothing to do, or dry run),
# 1 failure or timeout, 2 bad configuration.

set -euo pipefail

KROBS_LIB=${KROBS_LIB:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)}
# shellcheck source-path=SCRIPTDIR source=../lib/krobs_monitor.sh
. "$KROBS_LIB/krobs_monitor.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/krobs_es.sh
. "$KROBS_LIB/krobs_es.sh"

krobs_parse_dry_run
wait_timeout=${WAIT_TIMEOUT_SECONDS:-1800}
krobs_require_int WAIT_TIMEOUT_SECONDS "$wait_timeout" 0 86400
interval=${POLL_INTERVAL_SECONDS:-15}
krobs_require_int POLL_INTERVAL_SECONDS "$interval" 1 3600
es_init

# find_failed: sets FAILED to the shards unassigned for ALLOCATION_FAILED ("index[shard]p"),
# INITIALIZING to the shards being allocated, and UNASSIGNED to the number of unassigned
# shards for any reason.
find_failed() {
  FAILED=()
  INITIALIZING=()
  UNASSIGNED=0
  es_request GET "/_cat/shards?h=index,shard,prirep,state,unassigned.reason" || return 1
  local index shard prirep state reason
  while read -r index shard prirep state reason _; do
    case "${state:-}" in
      UNASSIGNED)
        UNASSIGNED=$((UNASSIGNED + 1))
        if [ "${reason:-}" = ALLOCATION_FAILED ]; then FAILED+=("${index}[${shard}]${prirep}"); fi
        ;;
      INITIALIZING) INITIALIZING+=("${index}[${shard}]${prirep}") ;;
    esac
  done <<<"$ES_BODY"
}

# pending: sets PENDING to the retried shards that are failed or still initializing.
pending() {
  PENDING=()
  local key
  for key in "${retried[@]}"; do
    if printf '%s\n' ${FAILED[@]+"${FAILED[@]}"} ${INITIALIZING[@]+"${INITIALIZING[@]}"} | grep -Fxq -- "$key"; then
      PENDING+=("$key")
    fi
  done
}

find_failed || krobs_fail "$ES_ERROR" "$(es_error_details)"
details="\"dry_run\":$(krobs_json_bool "$KROBS_DRY_RUN")"
if [ "${#FAILED[@]}" -eq 0 ]; then
  krobs_finish "no shard is unassigned for ALLOCATION_FAILED" "{$details,\"unassigned\":$UNASSIGNED}"
fi
retried=("${FAILED[@]}")
details+=",\"failed_before\":$(krobs_json_array "${retried[@]}")"
krobs_log "${#retried[@]} shards are unassigned for ALLOCATION_FAILED: ${retried[*]:0:20}"
if [ "$KROBS_DRY_RUN" = 1 ]; then
  krobs_finish "DRY_RUN: would retry allocation of ${#retried[@]} shards" "{$details}"
fi

es_request POST "/_cluster/reroute?retry_failed=true&metric=none" || krobs_fail "$ES_ERROR" "$(es_error_details)"
krobs_log "asked Elasticsearch to retry failed allocations"

deadline=$(($(date +%s) + wait_timeout))
while :; do
  find_failed || krobs_fail "$ES_ERROR" "$(es_error_details)"
  pending
  if [ "${#FAILED[@]}" -eq 0 ] && [ "${#PENDING[@]}" -eq 0 ]; then
    krobs_finish "retried allocation of ${#retried[@]} shards; all are assigned again" \
      "{$details,\"unassigned\":$UNASSIGNED}"
  fi
  now=$(date +%s)
  if [ "$now" -ge "$deadline" ]; then
    krobs_fail "timed out after ${wait_timeout}s: ${#FAILED[@]} shards are unassigned for ALLOCATION_FAILED and ${#PENDING[@]} retried shards are not started; see GET _cluster/allocation/explain" \
      "{$details,\"still_failed\":$(krobs_json_array ${FAILED[@]+"${FAILED[@]}"}),\"pending\":$(krobs_json_array ${PENDING[@]+"${PENDING[@]}"}),\"unassigned\":$UNASSIGNED}"
  fi
  krobs_log "${#FAILED[@]} shards unassigned for ALLOCATION_FAILED, ${#PENDING[@]} retried shards not started yet; next check in ${interval}s"
  sleep "$((interval < deadline - now ? interval : deadline - now))"
done
