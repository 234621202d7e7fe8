# shellcheck shell=bash disable=SC2034 # sets variables read by the krobs that source it
# Shared helper for Bash krobs: logging, JSON quoting, environment checks and monitor
# reports. Source it, do not run it.
#
# Every krob reports three kinds of event to the Krobs monitor service by POSTing
# JSON to $KROBS_MONITOR_URL:
#
#   {"krob": "bash/<script stem>", "event": "start" | "finish" | "failure",
#    "message": "...", "details": {...}}
#
# Monitoring must never make a krob fail: when KROBS_MONITOR_URL is unset the event
# is logged to stderr instead, and when the monitor cannot be reached (curl, else
# wget) the error is logged and the krob carries on.
#
# Typical use, with `set -euo pipefail`:
#
#   . "${KROBS_LIB:-$(dirname "${BASH_SOURCE[0]}")/../lib}/krobs_monitor.sh"
#   krobs_begin                       # start event, and a failure event on any early exit
#   krobs_parse_dry_run               # KROBS_DRY_RUN=1 or 0
#   ...                               # krobs_fail "message" '{"k":1}' [exit code]
#   krobs_finish "message" '{"deleted":3}'
#
# Environment:
#   KROBS_MONITOR_URL              where to POST events (optional)
#   KROBS_MONITOR_TIMEOUT_SECONDS  timeout of one POST (default 5)

KROBS_LANGUAGE=bash
KROBS_KROB="${KROBS_LANGUAGE}/$(basename "${0%.*}")"
KROBS_REPORTED=""
KROBS_DRY_RUN=0
KROBS_EXIT_FAILURE=1
KROBS_EXIT_CONFIG=2

krobs_log() {
  printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KROBS_KROB" "$*" >&2
}

# krobs_json_string TEXT: TEXT as a JSON string literal, quotes included.
krobs_json_string() {
  local s
  # Drop control characters other than tab, newline and carriage return.
  s=$(printf '%s' "$1" | LC_ALL=C tr -d '\000-\010\013\014\016-\037'; printf x)
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

# krobs_report EVENT MESSAGE [DETAILS_JSON]: POST one event; never fails.
krobs_report() {
  local event=$1 message=$2 details=${3:-} body url timeout status rc
  [ -n "$details" ] || details='{}'
  body="{\"krob\":$(krobs_json_string "$KROBS_KROB"),\"event\":$(krobs_json_string "$event"),\"message\":$(krobs_json_string "$message"),\"details\":$details}"
  url=${KROBS_MONITOR_URL:-}
  timeout=${KROBS_MONITOR_TIMEOUT_SECONDS:-5}
  [[ $timeout =~ ^[0-9]+$ ]] || timeout=5
  if [ -z "$url" ]; then
    krobs_log "monitor: KROBS_MONITOR_URL is not set; $event event: $body"
  elif command -v curl >/dev/null 2>&1; then
    rc=0
    status=$(printf '%s' "$body" | curl -sS -o /dev/null -w '%{http_code}' -m "$timeout" \
      -H 'Content-Type: application/json' -H "User-Agent: krobs/$KROBS_KROB" \
      --data-binary @- "$url" 2>/dev/null) || rc=$?
    if [ "$rc" -ne 0 ]; then
      krobs_log "monitor: could not send $event event (curl exit code $rc); carrying on"
    elif [ "${status:0:1}" != 2 ]; then
      krobs_log "monitor: $event event refused with HTTP $status; carrying on"
    fi
  elif command -v wget >/dev/null 2>&1; then
    # busybox wget has no reliable timeout option of its own: bound it with timeout(1).
    local bounded=()
    if command -v timeout >/dev/null 2>&1; then bounded=(timeout "$timeout"); fi
    if ! "${bounded[@]}" wget -q -O /dev/null --header 'Content-Type: application/json' \
      --post-data "$body" "$url" >/dev/null 2>&1; then
      krobs_log "monitor: could not send $event event (wget failed); carrying on"
    fi
  else
    krobs_log "monitor: neither curl nor wget is available; $event event: $body"
  fi
  return 0
}

# krobs_begin: report the start event and arm a trap that reports a failure event if
# the krob exits non-zero without having reported its end.
krobs_begin() {
  local dry
  case "$(printf '%s' "${DRY_RUN:-}" | tr '[:upper:]' '[:lower:]')" in
    1 | true | yes | on) dry=true ;;
    "" | 0 | false | no | off) dry=false ;;
    *) dry=$(krobs_json_string "$DRY_RUN") ;;
  esac
  krobs_report start "started" "{\"dry_run\":$dry}"
  trap 'krobs_on_exit $?' EXIT
  # SIGTERM: the Job's deadline passed or the pod was evicted (the trap runs once the
  # current foreground command, e.g. a sleep between polls, returns).
  trap 'krobs_fail "terminated by SIGTERM (deadline passed or pod evicted)" "{}" 143' TERM
  trap 'krobs_fail "interrupted by SIGINT" "{}" 130' INT
}

krobs_on_exit() {
  local code=$1
  if [ -z "$KROBS_REPORTED" ] && [ "$code" -ne 0 ]; then
    KROBS_REPORTED=failure
    krobs_log "FAILED: exited with status $code"
    krobs_report failure "exited with status $code" "{\"exit_code\":$code}"
  fi
}

# krobs_fail MESSAGE [DETAILS_JSON] [EXIT_CODE]: report a failure event and exit (default 1).
krobs_fail() {
  local code=${3:-$KROBS_EXIT_FAILURE} message=${1:-failed}
  if [ -z "$KROBS_REPORTED" ]; then
    KROBS_REPORTED=failure
    krobs_log "FAILED: $message"
    krobs_report failure "$message" "${2:-}"
  fi
  exit "$code"
}

# krobs_finish MESSAGE [DETAILS_JSON]: report the finish event and exit 0.
krobs_finish() {
  KROBS_REPORTED=finish
  krobs_log "finished: $1"
  krobs_report finish "$1" "${2:-}"
  exit 0
}
