#!/usr/bin/env bash
# Lists the scripts of a published Krobs release for Harness's Custom Artifact source.
#
# Fetches the release manifest that `krobs-build` publishes as an OCI artifact, checks its
# digest, and prints the Harness view of it, byte for byte what
# `krobs-build manifest pull [REF] --format harness` prints:
#   {"manifest":"sha256:...","commit":"...","scripts":[{"id":...,"version":...},...],"releases":[...]}
# A script's version is `<id>@sha256:<manifest digest>` (Artifacts Array Path `$.scripts`,
# Version Path `version`); the release's is its manifest digest (`$.releases`, `release`).
#
# Needs bash, curl, jq, sha256sum; the AWS CLI for ECR. Reads:
#   KROBS_REGISTRY              registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com
#                               (required; loopback hosts are spoken to over http, others https)
#   KROBS_MANIFEST_REPOSITORY   the manifest's repository (default krobs/manifest)
#   KROBS_MANIFEST_REF          a tag, git-<commit> or sha256:<digest> (default latest)
#   KROBS_VERSION               the version picked, `<id>@sha256:<manifest digest>` or
#                               `sha256:<manifest digest>`: list that release (by its digest)
#                               instead of KROBS_MANIFEST_REF; empty or not a version: the ref
#   KROBS_REGISTRY_USERNAME / KROBS_REGISTRY_PASSWORD
#                               OCI registry credentials (basic auth, or for a bearer token)
#   KROBS_REGISTRY_KIND         ecr or oci (default: ecr when the host is an ECR host)
#   AWS_REGION                  ECR's region when the host does not name it
#   AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL
#                               another ECR API endpoint, as krobs-build honours them
# Writes to $HARNESS_ARTIFACT_RESULT_PATH when Harness sets it, else to stdout. Credentials are
# never printed, never put on a command line (they go to curl through a private header file).
set -euo pipefail

MEDIA_TYPE=application/vnd.krobs.manifest.v1+json
# What the apply step's timeout adds to a Job's deadline (krobs-build's harness::STEP_MARGIN_SECONDS).
STEP_MARGIN_SECONDS=600
ACCEPT='application/vnd.oci.image.manifest.v1+json'

die() {
    printf 'list-krobs: %s\n' "$*" >&2
    exit 1
}

for tool in curl jq sha256sum; do
    command -v "$tool" >/dev/null || die "\`$tool\` is not installed on this delegate"
done

registry=${KROBS_REGISTRY:-}
[[ -n $registry ]] || die "KROBS_REGISTRY is not set: give the registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
registry=${registry#https://}
registry=${registry#http://}
registry=${registry%/}
repository=${KROBS_MANIFEST_REPOSITORY:-krobs/manifest}
ref=${KROBS_MANIFEST_REF:-latest}
[[ $repository =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] ||
    die "KROBS_MANIFEST_REPOSITORY \`$repository\` is not an OCI repository name"
[[ $ref =~ ^([A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[0-9a-f]{64})$ ]] ||
    die "KROBS_MANIFEST_REF \`$ref\` is neither a tag nor sha256:<64 hex digits>"
# The version picked, at execution: its release, whatever was published since. (While versions
# are listed, nothing is picked yet: Harness passes an empty or unresolved value.)
version=${KROBS_VERSION:-}
pinned=""
if [[ $version =~ ^([a-z0-9_-]+(/[a-z0-9][a-z0-9_-]*)+@)?(sha256:[0-9a-f]{64})$ ]]; then
    pinned=${BASH_REMATCH[3]}
elif [[ -n $version && $version != *'<'* && $version != null ]]; then
    # (an expression Harness left unresolved holds `<`: no note for it)
    printf 'list-krobs: KROBS_VERSION `%s` is not a version (`<id>@sha256:<digest>`): listing `%s`\n' \
        "$version" "$ref" >&2
fi

case $registry in
127.* | localhost | localhost:* | '[::1]' | '[::1]:'*) scheme=http ;;
*) scheme=https ;;
esac
base="$scheme://$registry/v2/$repository"

kind=${KROBS_REGISTRY_KIND:-}
if [[ -z $kind ]]; then
    if [[ $registry =~ ^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$ ]]; then kind=ecr; else kind=oci; fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
auth="$work/auth" # one `Authorization:` header line, or empty
: >"$auth"

username=${KROBS_REGISTRY_USERNAME:-}
password=${KROBS_REGISTRY_PASSWORD:-}
case $kind in
ecr)
    command -v aws >/dev/null || die "ECR needs the AWS CLI (\`aws\`) on this delegate"
    region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
    if [[ $registry =~ \.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com ]]; then region=${BASH_REMATCH[1]}; fi
    [[ -n $region ]] || die "set AWS_REGION: the ECR host \`$registry\` does not name its region"
    aws_args=(ecr get-login-password --region "$region")
    endpoint=${AWS_ENDPOINT_URL_ECR:-${AWS_ENDPOINT_URL:-}}
    if [[ -n $endpoint ]]; then aws_args+=(--endpoint-url "$endpoint"); fi
    username=AWS
    password=$(aws "${aws_args[@]}") ||
        die "aws ecr get-login-password failed in $region: check the delegate's AWS credentials"
    ;;
oci) ;;
*) die "KROBS_REGISTRY_KIND \`$kind\` is neither ecr nor oci" ;;
esac

basic_header() {
    [[ -n $username ]] || return 0
    printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$username" "$password" | base64 | tr -d '\n')"
}
basic_header >"$auth"

# GET $1 into $2 with the current credentials; prints the HTTP status; headers go to $2.headers.
get() {
    local url=$1 out=$2 accept=${3:-*/*}
    curl -sS -L --max-time 60 --retry 3 -o "$out" -D "$out.headers" -w '%{http_code}' \
        -H "Accept: $accept" -H @"$auth" "$url" ||
        die "cannot reach $url"
}

# A `Bearer realm="...",service="...",scope="..."` challenge: ask the realm for a token.
bearer_token() {
    local challenge=$1 realm service scope query token
    realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")
    service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$challenge")
    scope=$(sed -n 's/.*scope="\([^"]*\)".*/\1/p' <<<"$challenge")
    [[ -n $realm ]] || die "$registry asks for a bearer token but names no realm"
    query=""
    [[ -n $service ]] && query+="service=$(jq -rn --arg v "$service" '$v|@uri')&"
    query+="scope=$(jq -rn --arg v "${scope:-repository:$repository:pull}" '$v|@uri')"
    basic_header >"$auth"
    local status
    status=$(get "$realm?$query" "$work/token")
    [[ $status == 200 ]] || die "the token service of $registry answered HTTP $status: check KROBS_REGISTRY_USERNAME / KROBS_REGISTRY_PASSWORD"
    token=$(jq -er '.token // .access_token' "$work/token") ||
        die "the token service of $registry answered without a token"
    printf 'Authorization: Bearer %s\n' "$token" >"$auth"
}

# GET with one retry after answering the registry's challenge (basic or bearer).
fetch() {
    local url=$1 out=$2 accept=${3:-*/*} status challenge
    status=$(get "$url" "$out" "$accept")
    if [[ $status == 401 ]]; then
        challenge=$(tr -d '\r' <"$out.headers" | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: *//p' | tail -n 1)
        case $challenge in
        [Bb]earer*) bearer_token "$challenge" ;;
        [Bb]asic*)
            [[ -n $username ]] || die "$registry wants credentials: set KROBS_REGISTRY_USERNAME and KROBS_REGISTRY_PASSWORD"
            ;;
        *) die "$registry answered HTTP 401 without a challenge this script knows" ;;
        esac
        status=$(get "$url" "$out" "$accept")
        [[ $status != 401 ]] || die "$registry refused the credentials (HTTP 401): check KROBS_REGISTRY_USERNAME / KROBS_REGISTRY_PASSWORD"
    fi
    printf '%s' "$status"
}

if [[ -n $pinned ]]; then
    # The release's manifest is the artifact's layer: a blob of the repository, named by digest.
    digest=$pinned
    status=$(fetch "$base/blobs/$digest" "$work/manifest.json")
    case $status in
    200) ;;
    404) die "no release $digest in $registry/$repository: the version picked names a manifest that is not there" ;;
    *) die "GET blob $digest of $registry/$repository answered HTTP $status" ;;
    esac
else
    status=$(fetch "$base/manifests/$ref" "$work/oci-manifest" "$ACCEPT")
    case $status in
    200) ;;
    404) die "no manifest \`$registry/$repository:$ref\`: has a release been published there?" ;;
    *) die "GET $registry/$repository manifest \`$ref\` answered HTTP $status" ;;
    esac
    if [[ $ref == sha256:* ]]; then
        got="sha256:$(sha256sum "$work/oci-manifest" | cut -d' ' -f1)"
        [[ $got == "$ref" ]] || die "the registry answered $got for $ref"
    fi

    layer=$(jq -ec --arg mt "$MEDIA_TYPE" '[.layers[]? | select(.mediaType == $mt)] | if length == 1 then .[0] else empty end' \
        "$work/oci-manifest") ||
        die "\`$registry/$repository:$ref\` is not a Krobs manifest artifact (no single $MEDIA_TYPE layer)"
    digest=$(jq -r '.digest' <<<"$layer")
    [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "the manifest layer has an unsupported digest \`$digest\`"

    status=$(fetch "$base/blobs/$digest" "$work/manifest.json")
    [[ $status == 200 ]] || die "GET blob $digest of $registry/$repository answered HTTP $status"
fi
got="sha256:$(sha256sum "$work/manifest.json" | cut -d' ' -f1)"
[[ $got == "$digest" ]] || die "blob $digest of $registry/$repository has digest $got: refusing it"

# The view; each script's `values` are its Kubernetes object's, as `krobs-build` derives them
# (names and labels from the id, lint's rules; resources, deadline, retries from the manifest).
jq -c --arg manifest "$digest" --argjson margin "$STEP_MARGIN_SECONDS" '
  def k8s_name($max):
    ("krobs-" + (.id | gsub("[/_]"; "-"))) as $n
    | if ($n | length) <= $max and ($n | test("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")) then $n
      else error("script `\(.id)` makes no Kubernetes name of at most \($max) characters (lint refuses such ids)") end;
  def label_value:
    if length <= 63 and test("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$") then .
    else error("`\(.)` makes no Kubernetes label value (lint refuses such ids)") end;
  def values($monitor; $commit):
    (.job.kind == "CronJob") as $cron
    | {
        id: .id,
        owner: .header.owner,
        description: .header.description,
        image: (.image // ""),
        args: .command,
        kind: .job.kind,
        name: k8s_name(if $cron then 52 else 57 end),
        script_label: (.id | gsub("/"; ".") | label_value),
        language_label: (.language | label_value),
        schedule: (if $cron then .job.schedule // "" else "" end),
        concurrency_policy: (if $cron then .job.concurrency_policy // "Forbid" else "" end),
        active_deadline_seconds: (.job.active_deadline_seconds | tostring),
        backoff_limit: (.job.backoff_limit | tostring),
        ttl_seconds_after_finished: (.job.ttl_seconds_after_finished | tostring),
        cpu: .job.resources.cpu_request,
        memory_request: .job.resources.memory_request,
        memory_limit: .job.resources.memory_limit,
        ephemeral_storage: (.job.resources.ephemeral_storage_request // "1Gi"),
        tmp_size_limit: (.job.resources.tmp_size_limit // "1Gi"),
        monitor_url: $monitor,
        commit: $commit,
        manifest: $manifest
      };
  if .format != "krobs-manifest/v1" then error("not a krobs-manifest/v1 manifest")
  elif .preview then error("a preview manifest names no image digests")
  else . end
  | (.monitor_url // "") as $monitor
  | (.commit // "") as $commit
  | [.scripts[] | values($monitor; $commit)] as $values
  | {
      manifest: $manifest,
      commit: $commit,
      scripts: [range(0; .scripts | length) as $i | .scripts[$i] | {
        id: .id,
        version: (.id + "@" + $manifest),
        language: .language,
        owner: (.header.owner // ""),
        image: (.image // ""),
        command: (.command | tojson),
        kind: .job.kind,
        schedule: (.job.schedule // ""),
        timeout_seconds: (.job.active_deadline_seconds | tostring),
        step_timeout: ((.job.active_deadline_seconds + $margin | tostring) + "s"),
        retries: (.job.backoff_limit | tostring),
        cpu: (.job.resources.cpu_request // ""),
        memory: (.job.resources.memory_request // ""),
        monitor_url: $monitor,
        values: ($values[$i] | tojson | @base64)
      }],
      releases: [{
        release: $manifest,
        commit: $commit,
        schedules: ({cronjobs: [$values[] | select(.kind == "CronJob")]} | tojson | @base64)
      }]
    }' "$work/manifest.json" >"$work/view.json" ||
    die "the manifest $digest is not one this script can read"

if [[ -n ${HARNESS_ARTIFACT_RESULT_PATH:-} ]]; then
    cat "$work/view.json" >"$HARNESS_ARTIFACT_RESULT_PATH"
else
    cat "$work/view.json"
fi
