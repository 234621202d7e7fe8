# shellcheck shell=bash disable=SC2034 # sets variables read by the krobs that source it
# Minimal Elasticsearch REST client for Bash krobs, on curl. Source it after
# krobs_monitor.sh; do not run it.
#
#   es_init                                      # reads the environment, exits 2 if invalid
#   if es_request GET "/_cat/shards?h=index,state"; then echo "$ES_BODY"; fi
#   es_request PUT "/my-index/_settings" '{"index.blocks.read_only_allow_delete":null}' \
#     || krobs_fail "$ES_ERROR" "$(es_error_details)"
#
# es_request sets ES_STATUS (0 when Elasticsearch could not be reached), ES_BODY and,
# on failure, ES_ERROR; it returns 0 for a 2xx answer and 1 otherwise.
#
# Environment:
#   ELASTICSEARCH_URL              base URL (default http://localhost:9200)
#   ELASTICSEARCH_API_KEY          optional, sent as `Authorization: ApiKey ...`
#   ELASTICSEARCH_USERNAME         optional basic auth user (with ELASTICSEARCH_PASSWORD)
#   ELASTICSEARCH_PASSWORD
#   ELASTICSEARCH_CA_CERT          optional path to a CA bundle for https
#   ELASTICSEARCH_TIMEOUT_SECONDS  timeout of one request (default 60)
#
# Credentials never appear on a command line or in a log: curl reads them from a
# config on its standard input, and logged URLs have no user-info.

ES_BASE=""
ES_AUTH_CONFIG=""
ES_TIMEOUT=60
ES_STATUS=0
ES_BODY=""
ES_ERROR=""

# es_curl_quote TEXT: TEXT quoted for a curl config file.
es_curl_quote() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

es_init() {
  local url=${ELASTICSEARCH_URL:-http://localhost:9200} userinfo="" user password
  if ! [[ $url =~ ^https?://[^/]+ ]]; then
    krobs_fail "\`ELASTICSEARCH_URL\` must be an http(s) URL, got \`$(es_redact "$url")\`" '{}' "$KROBS_EXIT_CONFIG"
  fi
  if [[ $url =~ ^(https?://)([^/@]*)@(.*)$ ]]; then
    userinfo=${BASH_REMATCH[2]}
    url=${BASH_REMATCH[1]}${BASH_REMATCH[3]}
  fi
  ES_BASE=${url%/}
  ES_TIMEOUT=${ELASTICSEARCH_TIMEOUT_SECONDS:-60}
  krobs_require_int ELASTICSEARCH_TIMEOUT_SECONDS "$ES_TIMEOUT" 1
  if [ -n "${ELASTICSEARCH_API_KEY:-}" ]; then
    ES_AUTH_CONFIG="header = $(es_curl_quote "Authorization: ApiKey $ELASTICSEARCH_API_KEY")"
  elif [ -n "${ELASTICSEARCH_USERNAME:-}" ]; then
    ES_AUTH_CONFIG="user = $(es_curl_quote "$ELASTICSEARCH_USERNAME:${ELASTICSEARCH_PASSWORD:-}")"
  elif [ -n "$userinfo" ]; then
    user=$(es_urldecode "${userinfo%%:*}")
    password=""
    [[ $userinfo == *:* ]] && password=$(es_urldecode "${userinfo#*:}")
    ES_AUTH_CONFIG="user = $(es_curl_quote "$user:$password")"
  fi
  if [ -n "${ELASTICSEARCH_CA_CERT:-}" ]; then
    ES_AUTH_CONFIG+=$'\n'"cacert = $(es_curl_quote "$ELASTICSEARCH_CA_CERT")"
  fi
}

es_urldecode() {
  local s=${1//+/ }
  printf '%b' "${s//%/\\x}"
}

# es_redact URL: URL without user-info, safe to log.
es_redact() {
  local url=$1
  if [[ $url =~ ^([a-z]+://)[^/@]*@(.*)$ ]]; then
    url=${BASH_REMATCH[1]}${BASH_REMATCH[2]}
  fi
  printf '%s' "$url"
}

# es_quote NAME: an index name or pattern quoted for a URL path (keeps * , - _ . +).
es_quote() {
  local s=$1 out="" c i hex
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [a-zA-Z0-9*,._+-]) out+=$c ;;
      *)
        hex=$(printf '%s' "$c" | od -An -tx1 | tr -d ' \n')
        while [ -n "$hex" ]; do
          out+="%${hex:0:2}"
          hex=${hex:2}
        done
        ;;
    esac
  done
  printf '%s' "$out"
}

# es_request METHOD PATH [JSON_BODY]: PATH may carry a query string.
es_request() {
  local method=$1 path=$2 body=${3-} tmp rc=0 status
  local args=(-sS -X "$method" -m "$ES_TIMEOUT" --connect-timeout 30 -H 'Accept: application/json')
  if [ "$#" -ge 3 ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  fi
  tmp=$(mktemp)
  # Credentials go to curl as a config on stdin, never on its command line.
  status=$(printf '%s\n' "$ES_AUTH_CONFIG" | curl "${args[@]}" -K - -o "$tmp" -w '%{http_code}' \
    "$ES_BASE$path" 2>/dev/null) || rc=$?
  ES_BODY=$(cat "$tmp")
  rm -f "$tmp"
  ES_ERROR=""
  if [ "$rc" -ne 0 ]; then
    ES_STATUS=0
    ES_ERROR="cannot reach Elasticsearch at $ES_BASE ($method ${path%%\?*}): curl exit code $rc"
    return 1
  fi
  ES_STATUS=$status
  if [ "${ES_STATUS:0:1}" = 2 ]; then
    return 0
  fi
  local reason
  reason=$(printf '%s' "$ES_BODY" | grep -oE '"reason"[[:space:]]*:[[:space:]]*"([^"\\]|\\.)*"' | head -n 1 \
    | sed -E 's/^"reason"[[:space:]]*:[[:space:]]*"//; s/"$//') || true
  ES_ERROR="$method ${path%%\?*} returned HTTP $ES_STATUS${reason:+: $reason}"
  return 1
}

# es_error_details: details JSON for a failure event about the last es_request.
es_error_details() {
  printf '{"status":%s,"response":%s}' "${ES_STATUS:-0}" "$(krobs_json_string "${ES_BODY:0:2000}")"
}
