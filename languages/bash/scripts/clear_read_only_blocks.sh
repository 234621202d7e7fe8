#!/usr/bin/env bash
# ---
# owner = "search-infra (#search-oncall)"
# description = "Incident one-off after a disk-full event: clears index.blocks.read_only_allow_delete on the open indices matching INDEX_PATTERN (default *) that still carry it, once every node is below MAX_DISK_PERCENT (default 90) disk use; FORCE=1 skips that check. Env: ELASTICSEARCH_URL, INDEX_PATTERN, MAX_DISK_PERCENT, FORCE, DRY_RUN."
# timeout = "30m"
# retries = 2
# ---
#
# Elasticsearch puts this block on every index with a shard on a node past the flood
# stage watermark. Recent versions lift it by themselves once disk use falls below
# the high watermark; older ones, and clusters where that did not happen, need this.
# Clearing it while a node is still nearly full only lets writes fill it again, hence
# the disk check.
#
# Idempotent: only indices that still carry the block are touched, and setting the
# block to null on an index that no longer has it is harmless.
#
# Exit codes: 0 done (or dry run), 1 failure (including a node still too full),
# 2 bad configuration.

set -euo pipefail

KROBS_LIB=${KROBS_LIB:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)}
# shellcheck source-path=SCRIPTDIR source=../lib/krobs_monitor.sh
. "$KROBS_LIB/krobs_monitor.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/krobs_es.sh
. "$KROBS_LIB/krobs_es.sh"

SETTING=index.blocks.read_only_allow_delete

krobs_parse_dry_run
pattern=${INDEX_PATTERN:-*}
max_disk=${MAX_DISK_PERCENT:-90}
krobs_require_int MAX_DISK_PERCENT "$max_disk" 1 100
case "${FORCE:-0}" in
  1 | true | yes) force=1 ;;
  0 | false | no | "") force=0 ;;
  *) krobs_fail "\`FORCE\` must be 1 or 0, got \`$FORCE\`" '{}' "$KROBS_EXIT_CONFIG" ;;
esac
es_init

# find_blocked: sets BLOCKED to the open indices matching the pattern that carry the block.
find_blocked() {
  BLOCKED=()
  if ! es_request GET "/$(es_quote "$pattern")/_settings/$SETTING?flat_settings=true&expand_wildcards=open"; then
    if [ "$ES_STATUS" = 404 ]; then
      return 0 # a concrete index name that does not exist: nothing is blocked
    fi
    return 1
  fi
  # {"<index>":{"settings":{"index.blocks.read_only_allow_delete":"true"}},...}
  local index names
  names=$(printf '%s' "$ES_BODY" \
    | grep -oE '"[^"]+"[[:space:]]*:[[:space:]]*\{[[:space:]]*"settings"[[:space:]]*:[[:space:]]*\{[[:space:]]*"index\.blocks\.read_only_allow_delete"[[:space:]]*:[[:space:]]*"?true"?' \
    | sed -E 's/^"([^"]+)".*/\1/') || true
  while IFS= read -r index; do
    if [ -n "$index" ]; then BLOCKED+=("$index"); fi
  done <<<"$names"
}

# 1. Is there room again on every node?
es_request GET "/_cat/allocation?h=node,disk.percent" || krobs_fail "$ES_ERROR" "$(es_error_details)"
full=()
while read -r node percent _; do
  [[ ${percent:-} =~ ^[0-9]+$ ]] || continue # UNASSIGNED row, or a node without disk stats
  if [ "$percent" -ge "$max_disk" ]; then
    full+=("$node:$percent%")
  fi
done <<<"$ES_BODY"
if [ "${#full[@]}" -gt 0 ]; then
  if [ "$force" = 1 ]; then
    krobs_log "warning: FORCE=1, clearing blocks although nodes are at or above $max_disk% disk: ${full[*]}"
  else
    krobs_fail "nodes at or above $max_disk% disk use: ${full[*]}; free disk space first, or set FORCE=1" \
      "{\"max_disk_percent\":$max_disk,\"full_nodes\":$(krobs_json_array "${full[@]}")}"
  fi
fi

# 2. Which indices still carry the block?
find_blocked || krobs_fail "$ES_ERROR" "$(es_error_details)"
blocked=(${BLOCKED[@]+"${BLOCKED[@]}"})

details="\"pattern\":$(krobs_json_string "$pattern"),\"dry_run\":$(krobs_json_bool "$KROBS_DRY_RUN"),\"forced\":$(krobs_json_bool "$force")"
if [ "${#blocked[@]}" -eq 0 ]; then
  krobs_finish "no open index matching \`$pattern\` has $SETTING set" "{$details,\"cleared\":[]}"
fi
if [ "$KROBS_DRY_RUN" = 1 ]; then
  for index in "${blocked[@]}"; do
    krobs_log "DRY_RUN: would clear $SETTING on \`$index\`"
  done
  krobs_finish "DRY_RUN: would clear $SETTING on ${#blocked[@]} indices" \
    "{$details,\"would_clear\":$(krobs_json_array "${blocked[@]}")}"
fi

# 3. Clear it, index by index.
cleared=()
failed=()
for index in "${blocked[@]}"; do
  krobs_log "clearing $SETTING on \`$index\`"
  if es_request PUT "/$(es_quote "$index")/_settings" "{\"$SETTING\":null}"; then
    cleared+=("$index")
  elif [ "$ES_STATUS" = 404 ]; then
    krobs_log "\`$index\` is gone"
  elif [ "$ES_STATUS" = 0 ]; then
    krobs_fail "$ES_ERROR" "{$details,\"cleared\":$(krobs_json_array ${cleared[@]+"${cleared[@]}"})}"
  else
    krobs_log "could not clear \`$index\`: $ES_ERROR"
    failed+=("$index")
  fi
done

# 4. Check.
find_blocked || krobs_fail "$ES_ERROR" "$(es_error_details)"
remaining=(${BLOCKED[@]+"${BLOCKED[@]}"})
details+=",\"cleared\":$(krobs_json_array ${cleared[@]+"${cleared[@]}"})"
details+=",\"failed\":$(krobs_json_array ${failed[@]+"${failed[@]}"})"
details+=",\"still_blocked\":$(krobs_json_array ${remaining[@]+"${remaining[@]}"})"
if [ "${#failed[@]}" -gt 0 ] || [ "${#remaining[@]}" -gt 0 ]; then
  krobs_fail "${#remaining[@]} indices still carry $SETTING (${#failed[@]} updates failed)" "{$details}"
fi
krobs_finish "cleared $SETTING on ${#cleared[@]} indices" "{$details}"
