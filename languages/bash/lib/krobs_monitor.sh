# shellcheck shell=bash disable=SC2034 # sets variables read by the krobs that source it
# What Bash krobs share beyond the run contract: logging, JSON quoting, environment checks, and
# the `message` / `metric` events a script sends on purpose (`krobs-build schema monitor`).
# Source it, do not run it.
#
# The entrypoint /opt/krobs/bin/krobs-run already tells the monitor `start`, `finish` and
# `failure`, forwards SIGTERM and passes the exit code through; a script only exits with its
# documented code. Typical use, with `set -euo pipefail`:
#
#   . "${KROBS_LIB:-$(dirname "${BASH_SOURCE[0]}")/../lib}/krobs_monitor.sh"
#   krobs_parse_dry_run               # KROBS_DRY_RUN=1 or 0
#   ...                               # krobs_fail "text" '{"k":1}' [exit code]
#   krobs_metric krobs.deleted 3 count '{"cluster":"main"}'
#   krobs_finish "text" '{"deleted":3}'  # logged, sent as a message, exit 0
#
# Environment: KROBS_ID (set by krobs-run), KROBS_MONITOR_URL (unset: events go to stderr),
# KROBS_MONITOR_TOKEN (sent as a bearer token when set), KROBS_MONITOR_TIMEOUT_SECONDS (one attempt, default 5; at most 3 attempts, 1 s then 2 s apart).

KROBS_KROB=${KROBS_ID:-bash/$(basename "${0%.*}")}
KROBS_DRY_RUN=0
KROBS_EXIT_FAILURE=1
KROBS_EXIT_CONFIG=2

krobs_log() {
  printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KROBS_KROB" "$*" >&2
}

# krobs_json_string TEXT: TEXT as a JSON string literal, quotes included.
krobs_json_string() {
  local s
  # Drop control characters other than tab, newline and carriage return, and invalid UTF-8.
  s=$(printf '%s' "$1" | LC_ALL=C tr -d '\000-\010\013\014\016-\037' | iconv -c -f UTF-8 -t UTF-8 2>/dev/null; printf x)
  s=${s%x}
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

# krobs_json_array ITEM...: the items as a JSON array of strings.
krobs_json_array() {
  local out="" item
  for item in "$@"; do
    out+="${out:+,}$(krobs_json_string "$item")"
  done
  printf '[%s]' "$out"
}

# krobs_json_bool VALUE: true when VALUE is 1, else false.
krobs_json_bool() {
  if [ "$1" = 1 ]; then printf true; else printf false; fi
}

# --- environment -------------------------------------------------------------------

# krobs_require_int NAME VALUE MIN [MAX]: fail (exit 2) unless VALUE is an integer in range.
krobs_require_int() {
  local name=$1 value=$2 min=$3 max=${4:-}
  if ! [[ $value =~ ^-?[0-9]+$ ]] || [ "${#value}" -gt 12 ]; then
    krobs_fail "\`$name\` must be an integer, got \`$value\`" '{}' "$KROBS_EXIT_CONFIG"
  fi
  if [ "$value" -lt "$min" ]; then
    krobs_fail "\`$name\` must be at least $min, got $value" '{}' "$KROBS_EXIT_CONFIG"
  fi
  if [ -n "$max" ] && [ "$value" -gt "$max" ]; then
    krobs_fail "\`$name\` must be at most $max, got $value" '{}' "$KROBS_EXIT_CONFIG"
  fi
}

# krobs_require NAME: fail (exit 2) unless the environment variable NAME is set and not empty.
krobs_require() {
  if [ -z "${!1:-}" ]; then
    krobs_fail "environment variable \`$1\` is required but not set" '{}' "$KROBS_EXIT_CONFIG"
  fi
}

# krobs_parse_dry_run: sets KROBS_DRY_RUN to 1 when DRY_RUN asks for a dry run and to 0
# otherwise; fails (exit 2) on a value that is neither. Call it directly, not in $(...).
krobs_parse_dry_run() {
  case "$(printf '%s' "${DRY_RUN:-}" | tr '[:upper:]' '[:lower:]')" in
    1 | true | yes | on) KROBS_DRY_RUN=1 ;;
    "" | 0 | false | no | off) KROBS_DRY_RUN=0 ;;
    *) krobs_fail "\`DRY_RUN\` must be 1 or 0 (or true/false), got \`${DRY_RUN}\`" '{}' "$KROBS_EXIT_CONFIG" ;;
  esac
}

# --- monitor -----------------------------------------------------------------------

# krobs_auth_header: the bearer token header when KROBS_MONITOR_TOKEN is set (read by curl from
# a file descriptor, so the token never shows in the process list), else nothing.
krobs_auth_header() {
  if [ -n "${KROBS_MONITOR_TOKEN:-}" ]; then
    printf 'Authorization: Bearer %s\n' "$KROBS_MONITOR_TOKEN"
  fi
}

# krobs_post EVENT FIELDS_JSON: send one event (FIELDS_JSON: its own fields, with a leading
# comma); never fails.
krobs_post() {
  local event=$1 body url=${KROBS_MONITOR_URL:-} timeout=${KROBS_MONITOR_TIMEOUT_SECONDS:-5} attempt status rc
  body="{\"version\":1,\"event\":\"$event\",\"krob\":$(krobs_json_string "$KROBS_KROB"),\"host\":$(krobs_json_string "${HOSTNAME:-}"),\"time\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"$2}"
  if [ -z "$url" ]; then
    krobs_log "monitor: $body"
    return 0
  fi
  [[ $timeout =~ ^[1-9][0-9]{0,5}$ ]] || timeout=5
  for attempt in 1 2 3; do
    rc=0
    status=$(printf '%s' "$body" | curl -sS -o /dev/null -w '%{http_code}' -m "$timeout" \
      -H 'Content-Type: application/json' -H @<(krobs_auth_header) --data-binary @- "$url" 2>/dev/null) || rc=$?
    if [ "$rc" -eq 0 ] && [ "${status:0:1}" = 2 ]; then
      return 0
    fi
    if [ "$rc" -eq 0 ] && [ "${status:0:1}" = 4 ]; then
      break
    fi
    if [ "$attempt" -lt 3 ]; then sleep "$attempt"; fi
  done
  krobs_log "monitor: could not send the $event event (curl exit code $rc, HTTP ${status:-none}); carrying on"
  return 0
}

# krobs_message TEXT [DETAILS_JSON_OBJECT]: a message for the monitor (Slack).
krobs_message() {
  local details=${2:-}
  krobs_post message ",\"text\":$(krobs_json_string "$1"),\"details\":${details:-"{}"}"
}

# krobs_metric NAME VALUE [gauge|count] [TAGS_JSON_OBJECT]: a metric for the monitor (Datadog).
krobs_metric() {
  if ! [[ $2 =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
    krobs_log "monitor: metric \`$1\` has a value that is not a number (\`$2\`); not sent"
    return 0
  fi
  local tags=${4:-}
  krobs_post metric ",\"metric\":{\"name\":$(krobs_json_string "$1"),\"value\":$2,\"type\":$(krobs_json_string "${3:-gauge}"),\"tags\":${tags:-"{}"}}"
}

# krobs_fail TEXT [DETAILS_JSON] [EXIT_CODE]: log, send as a message, and exit (default 1).
krobs_fail() {
  krobs_log "FAILED: ${1:-failed}"
  krobs_message "FAILED: ${1:-failed}" "${2:-}"
  exit "${3:-$KROBS_EXIT_FAILURE}"
}

# krobs_finish TEXT [DETAILS_JSON]: log, send as a message, and exit 0.
krobs_finish() {
  krobs_log "finished: $1"
  krobs_message "$1" "${2:-}"
  exit 0
}
