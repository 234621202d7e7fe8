#!/usr/bin/env bash
# The test command: `bash tests/run.sh [extra `cargo nextest run` arguments]`.
# The benchmark command: `bash tests/run.sh --bench NAME [extra `cargo bench` arguments]`
# (e.g. `--bench pipeline`): the same set-up, then `cargo bench --bench NAME` instead of the tests.
#
# Makes sure the real parts the integration tests need are there, then runs the whole test suite:
#   - Debian packages (docker.io, docker-registry, skopeo, busybox-static, bash-static, awscli, redis-server,
#     apache2-utils, git, socat, mmdebstrap, maven) and PyPI packages (moto[server],
#     check-jsonschema, kubernetes-validate);
#   - the Go modules of tests/gotemplate (Harness's template engine), from the Go module proxy;
#   - a Docker Engine: $DOCKER_HOST if it answers, else the default socket, else a `dockerd`
#     started here (own socket, pidfile, exec root and data root; no bridge, no iptables);
#   - base images made locally, since no image can be pulled: `krobs-test/base:1` (busybox-static
#     + bash-static, for tests that never run a script) and one Debian bookworm image per
#     language runtime made by `mmdebstrap` from the machine's apt sources and `docker import`ed
#     (`krobs-test/debian-{python,ruby,bash}:1`, `krobs-test/debian-jre:2` with curl,
#     as the eclipse-temurin images have); each carries the hash of its recipe as a
#     label, so a warm machine keeps it and a changed recipe remakes it;
#   - a Maven repository folder, $KROBS_TEST_MAVEN_REPO (default /var/cache/krobs-test/maven),
#     holding the files languages/scala/ammonite.lock and dependencies.lock and
#     tests/scala-library/dependencies.lock pin, fetched by Maven from Maven Central
#     only when one is missing or differs (checked against the lock's sha256 every run), served
#     for the whole run by `python3 -m http.server` on a free loopback port: the "company
#     mirror" the Scala builds get as MAVEN_REPOSITORY (stopped on exit);
# and exports for the tests:
#   KROBS_TEST_SERVICES=1, DOCKER_HOST, KROBS_TEST_BASE_IMAGE, KROBS_TEST_BASE_PYTHON,
#   KROBS_TEST_BASE_RUBY, KROBS_TEST_BASE_BASH, KROBS_TEST_BASE_JRE, KROBS_TEST_REGISTRY_BIN,
#   KROBS_TEST_MOTO_BIN, KROBS_TEST_MAVEN_REPO, KROBS_TEST_MAVEN_MIRROR.
# The registries (docker-registry with htpasswd auth) and the moto server are started by the
# tests themselves (tests/it/support/services.rs), one per test, on free loopback ports.
#
# On exit, also on failure or interrupt, it stops only what it started (its dockerd and the Maven
# mirror, by PID) and exits with the test run's exit code. Logs: $KROBS_TEST_LOG_DIR (default /tmp/krobs-test).
# KROBS_TEST_STORAGE_DRIVER forces the storage driver of the dockerd started here.
set -euo pipefail

BENCH="" # set by `--bench NAME`: run that benchmark instead of the tests
if [[ ${1:-} == --bench ]]; then
    if [[ -z ${2:-} ]]; then
        printf 'run.sh: error: --bench needs a benchmark name, e.g. --bench pipeline\n' >&2
        exit 2
    fi
    BENCH=$2
    shift 2
fi

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${KROBS_TEST_LOG_DIR:-${TMPDIR:-/tmp}/krobs-test}
RUN_DIR=/run/krobs-test
DATA_ROOT=/var/lib/krobs-test-docker
OWN_SOCK=unix://$RUN_DIR/docker.sock
DEFAULT_SOCK=unix:///var/run/docker.sock
BASE_IMAGE=krobs-test/base:1

APT_PKGS=(docker.io docker-registry skopeo busybox-static bash-static apache2-utils git awscli socat mmdebstrap maven redis-server)
PIP_PKGS=("moto[server]" check-jsonschema kubernetes-validate)

START=$SECONDS
DOCKERD_PID=""   # set only when this script started dockerd
MIRROR_PID=""    # the loopback Maven mirror this script serves
POLICY_RC_D=""   # set only when this script created /usr/sbin/policy-rc.d

say() { printf 'run.sh: %s\n' "$*" >&2; }
log_tail() {
    say "last lines of $1:"
    tail -n "${2:-40}" "$1" | sed 's/^/    /' >&2 || true
}
die() {
    say "error: $*"
    exit 1
}

stop_dockerd() {
    local pid=$DOCKERD_PID i
    DOCKERD_PID=""
    kill -0 "$pid" 2>/dev/null || return 0
    say "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do # 30 s
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    say "dockerd (pid $pid) did not stop in 30 s: killing it and its containerd"
    local cpid
    cpid=$(cat "$RUN_DIR/exec/containerd/containerd.pid" 2>/dev/null || true)
    kill -KILL "$pid" 2>/dev/null || true
    if [[ -n $cpid ]]; then kill -KILL "$cpid" 2>/dev/null || true; fi
}

# shellcheck disable=SC2317 # run by the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $POLICY_RC_D ]] && rm -f "$POLICY_RC_D"
    [[ -n $MIRROR_PID ]] && kill "$MIRROR_PID" 2>/dev/null
    [[ -n $DOCKERD_PID ]] && stop_dockerd
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$LOG_DIR" "$RUN_DIR"

# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]} (log: $LOG_DIR/apt.log)"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # keep the packages' init scripts from starting a system dockerd / registry on :5000
        POLICY_RC_D=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
        chmod 0755 "$POLICY_RC_D"
    fi
    {
        apt-get update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    } >"$LOG_DIR/apt.log" 2>&1 || {
        log_tail "$LOG_DIR/apt.log"
        die "apt-get install failed"
    }
    if [[ -n $POLICY_RC_D ]]; then rm -f "$POLICY_RC_D" && POLICY_RC_D=""; fi
fi

pip_ok() {
    python3 -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("moto", "flask", "flask_cors", "boto3")))' 2>/dev/null &&
        command -v check-jsonschema >/dev/null && command -v kubernetes-validate >/dev/null
}
if ! pip_ok; then
    say "installing PyPI packages: ${PIP_PKGS[*]} (log: $LOG_DIR/pip.log)"
    pip_install() {
        python3 -m pip install --quiet --disable-pip-version-check "$@" "${PIP_PKGS[@]}" >>"$LOG_DIR/pip.log" 2>&1
    }
    : >"$LOG_DIR/pip.log"
    if ! pip_install; then
        # Debian's own python3 refuses (PEP 668) unless told otherwise
        if grep -q externally-managed "$LOG_DIR/pip.log" && pip_install --break-system-packages; then
            :
        else
            log_tail "$LOG_DIR/pip.log"
            die "pip install failed"
        fi
    fi
    if command -v pyenv >/dev/null; then pyenv rehash >/dev/null 2>&1 || true; fi
    hash -r
    pip_ok || die "PyPI packages still missing after pip install (log: $LOG_DIR/pip.log)"
fi

if [[ -z $BENCH ]] && ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest (log: $LOG_DIR/cargo-install.log)"
    cargo install --locked cargo-nextest >"$LOG_DIR/cargo-install.log" 2>&1 || {
        log_tail "$LOG_DIR/cargo-install.log"
        die "cargo install cargo-nextest failed"
    }
fi

# Harness's template engine for tests/it/harness.rs (tests/gotemplate, Go text/template + Sprig at
# the versions go.sum pins): its modules come from the Go module proxy once, then the module
# cache; the test support builds it into the target folder.
if [[ -z $BENCH ]]; then
    command -v go >/dev/null || die "the Go toolchain (\`go\`, 1.24 or newer) is not installed: tests/it/harness.rs renders with Harness's Go template engine"
    (cd "$REPO/tests/gotemplate" && go mod download) >"$LOG_DIR/go-mod.log" 2>&1 || {
        log_tail "$LOG_DIR/go-mod.log"
        die "go mod download in tests/gotemplate failed"
    }
fi

REGISTRY_BIN=$(command -v docker-registry) || die "docker-registry not found"
# the real script beside the interpreter pip used, not a version manager's shim
MOTO_BIN=$(python3 -c 'import os, sys; print(os.path.join(os.path.dirname(sys.executable), "moto_server"))')
[[ -x $MOTO_BIN ]] || MOTO_BIN=$(command -v moto_server) || die "moto_server not found"

# ---------------------------------------------------------------------------------------------
# Docker Engine
# ---------------------------------------------------------------------------------------------
docker_answers() { DOCKER_HOST=$1 timeout 20 docker version >/dev/null 2>&1; }

# Is overlay2 usable for a data root there? (Not on overlayfs itself, nor without mount rights.)
storage_driver() {
    local d ok=1
    mkdir -p "$DATA_ROOT"
    [[ -d $DATA_ROOT/overlay2 ]] && { echo overlay2; return; }
    [[ -d $DATA_ROOT/vfs ]] && { echo vfs; return; }
    d=$(mktemp -d "$DATA_ROOT/.overlay-probe.XXXXXX") || { echo vfs; return; }
    mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/merged"
    if mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>/dev/null; then
        umount "$d/merged" && ok=0
    fi
    rm -rf "$d"
    if ((ok == 0)); then echo overlay2; else echo vfs; fi
}

start_dockerd() {
    local driver=$1 i
    say "starting dockerd ($driver storage, data root $DATA_ROOT, log: $LOG_DIR/dockerd.log)"
    echo '{}' >"$RUN_DIR/daemon.json" # ignore /etc/docker/daemon.json
    # setsid: a Ctrl-C reaches the tests, not dockerd; the EXIT trap stops it.
    setsid dockerd \
        --config-file "$RUN_DIR/daemon.json" \
        --host "$OWN_SOCK" \
        --pidfile "$RUN_DIR/docker.pid" \
        --exec-root "$RUN_DIR/exec" \
        --data-root "$DATA_ROOT" \
        --storage-driver "$driver" \
        --bridge none \
        --iptables=false \
        --ip-forward=false \
        --ip-masq=false \
        --userland-proxy=false \
        >"$LOG_DIR/dockerd.log" 2>&1 </dev/null 9>&- &
    DOCKERD_PID=$!
    for ((i = 0; i < 300; i++)); do # 60 s
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            DOCKERD_PID=""
            return 1
        fi
        docker_answers "$OWN_SOCK" && return 0
        sleep 0.2
    done
    return 1
}

# One setup at a time (a second run.sh started meanwhile reuses what the first one made).
exec 9>"$RUN_DIR/setup.lock"
flock 9

if [[ -n ${DOCKER_HOST:-} ]] && docker_answers "$DOCKER_HOST"; then
    say "using the Docker Engine at DOCKER_HOST=$DOCKER_HOST"
elif docker_answers "$DEFAULT_SOCK"; then
    export DOCKER_HOST=$DEFAULT_SOCK
    say "using the Docker Engine at $DOCKER_HOST"
elif docker_answers "$OWN_SOCK"; then
    export DOCKER_HOST=$OWN_SOCK
    say "using the dockerd an earlier run left at $DOCKER_HOST (not stopping it)"
else
    [[ -n ${DOCKER_HOST:-} ]] && say "DOCKER_HOST=$DOCKER_HOST does not answer; starting a dockerd"
    if [[ -f $RUN_DIR/docker.pid ]]; then
        old=$(cat "$RUN_DIR/docker.pid" 2>/dev/null || true)
        if [[ -n $old ]] && kill -0 "$old" 2>/dev/null &&
            tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q "$RUN_DIR/docker.sock"; then
            die "a dockerd (pid $old) with socket $OWN_SOCK is running but does not answer; stop it first"
        fi
        rm -f "$RUN_DIR/docker.pid"
    fi
    driver=${KROBS_TEST_STORAGE_DRIVER:-$(storage_driver)} # overlay2, else vfs
    if ! start_dockerd "$driver"; then
        log_tail "$LOG_DIR/dockerd.log"
        [[ -n $DOCKERD_PID ]] && stop_dockerd
        if [[ $driver == overlay2 && ! -d $DATA_ROOT/overlay2/l ]]; then
            say "dockerd failed with overlay2; retrying with vfs (slower)"
            rm -rf "$DATA_ROOT/overlay2"
            start_dockerd vfs || {
                log_tail "$LOG_DIR/dockerd.log"
                die "dockerd did not become ready in 60 s"
            }
        else
            die "dockerd did not become ready in 60 s"
        fi
    fi
    export DOCKER_HOST=$OWN_SOCK
fi

# ---------------------------------------------------------------------------------------------
# Base image: nothing can be pulled, so make one from busybox-static and bash-static.
# ---------------------------------------------------------------------------------------------
make_base_image() {
    local root p
    root=$(mktemp -d "$LOG_DIR/rootfs.XXXXXX")
    chmod 0755 "$root" # mktemp's 0700 would become the image's / (non-root users locked out)
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home/krobs,tmp,dev,proc,sys}
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    install -m 0755 /bin/busybox "$root/bin/busybox"
    install -m 0755 /bin/bash-static "$root/bin/bash"
    ln -s /bin/bash "$root/usr/bin/bash"
    # the applet links: bin/sh, bin/cat, usr/bin/env, usr/bin/wget, ...
    while read -r p; do
        case $p in linuxrc | bin/busybox | bin/bash | usr/bin/bash) continue ;; esac
        [[ -e $root/$p || -L $root/$p ]] || ln -s /bin/busybox "$root/$p"
    done < <("$root/bin/busybox" --list-full)
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
krobs:x:10001:10001:krobs:/home/krobs:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
krobs:x:10001:
nogroup:x:65534:
EOF
    chown 10001:10001 "$root/home/krobs"
    tar -C "$root" --numeric-owner --sort=name --mtime=@0 -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/sh"]' \
            --change "LABEL krobs.test.base.recipe=$BASE_RECIPE" \
            --message 'krobs test base: busybox-static + bash-static' \
            - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
}
# the recipe's own hash, so that an image made by an older recipe is replaced
BASE_RECIPE=$(declare -f make_base_image | sha256sum | cut -c1-16)
have=$(docker image inspect --format '{{ index .Config.Labels "krobs.test.base.recipe" }}' "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have != "$BASE_RECIPE" ]]; then
    say "making the base image $BASE_IMAGE"
    make_base_image # (not in a condition, so that `set -e` applies inside)
    # drop the older recipes' images that the new tag left untagged
    docker image prune --force --filter label=krobs.test.base.recipe >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------------------------------------
# Debian runtime bases: what the shipped Dockerfiles' default bases bring, from Debian packages.
# ---------------------------------------------------------------------------------------------
# language | image | packages (besides Essential and apt, which the `apt` variant brings)
DEBIAN_BASES=(
    "python|krobs-test/debian-python:1|python3 ca-certificates"
    "ruby|krobs-test/debian-ruby:1|ruby ca-certificates"
    "bash|krobs-test/debian-bash:1|bash curl jq ca-certificates"
    "jre|krobs-test/debian-jre:2|openjdk-17-jre-headless curl ca-certificates"
)
make_debian_base() {
    local image=$1 packages=$2 recipe=$3 log=$4 tarball=$5
    # To a file first: a failed mmdebstrap must not leave a half image under the final tag.
    # (/usr/share/man stays: the JRE's update-alternatives links its man pages there.)
    mmdebstrap --variant=apt --format=tar --include="${packages// /,}" \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$tarball" >"$log" 2>&1
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL krobs.test.base.recipe=$recipe" \
        --message "krobs test base: Debian bookworm with $packages" \
        "$tarball" "$image" >>"$log" 2>&1
    rm -f "$tarball"
}
pids=() names=()
for entry in "${DEBIAN_BASES[@]}"; do
    IFS='|' read -r lang image packages <<<"$entry"
    recipe=$({ declare -f make_debian_base; echo "$packages"; } | sha256sum | cut -c1-16)
    have=$(docker image inspect --format '{{ index .Config.Labels "krobs.test.base.recipe" }}' "$image" 2>/dev/null || true)
    [[ $have == "$recipe" ]] && continue
    say "making the base image $image with mmdebstrap (log: $LOG_DIR/base-$lang.log)"
    make_debian_base "$image" "$packages" "$recipe" "$LOG_DIR/base-$lang.log" "$LOG_DIR/base-$lang.tar" &
    pids+=($!) names+=("$lang")
done
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        log_tail "$LOG_DIR/base-${names[$i]}.log"
        die "making the ${names[$i]} base image failed"
    fi
done
if ((${#pids[@]})); then
    docker image prune --force --filter label=krobs.test.base.recipe >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------------------------------------
# Maven: the files the Scala locks pin, fetched by Maven from Maven Central into a
# repository folder of their own (only when one is missing or differs), then served read-only
# on a loopback port as the "company mirror" the Scala Dockerfile's MAVEN_REPOSITORY names.
# ---------------------------------------------------------------------------------------------
MAVEN_REPO=${KROBS_TEST_MAVEN_REPO:-/var/cache/krobs-test/maven}
# Ammonite's jars, the libraries of the shipped dependencies.sc, and those of the tests' own
# (tests/scala-library: tests/it/krobs.rs builds a Scala runtime with them).
MAVEN_LOCKS=("$REPO/languages/scala/ammonite.lock" "$REPO/languages/scala/dependencies.lock"
    "$REPO/tests/scala-library/dependencies.lock")
# `sha256  path` lines of the locks, comments dropped
locked() { grep -hvE '^[[:space:]]*(#|$)' "${MAVEN_LOCKS[@]}"; }
maven_repo_ok() { (cd "$MAVEN_REPO" 2>/dev/null && locked | sha256sum --check --quiet --strict >/dev/null 2>&1); }
# A pom whose dependencies are exactly the locked files (each without its own dependencies), so
# that Maven's resolution fetches them and nothing chosen by its own version rules.
locked_pom() {
    local sum path dir file version artifact group rest classifier ext
    printf '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>\n'
    printf '<groupId>krobs.test</groupId><artifactId>maven-mirror</artifactId><version>0</version><dependencies>\n'
    while read -r sum path; do
        dir=${path%/*} file=${path##*/}
        version=${dir##*/} dir=${dir%/*}
        artifact=${dir##*/} group=${dir%/*}
        rest=${file#"$artifact-$version"} ext=${rest##*.} classifier=${rest%.*} classifier=${classifier#-}
        printf '<dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version><type>%s</type>' \
            "${group//\//.}" "$artifact" "$version" "$ext"
        [[ -n $classifier ]] && printf '<classifier>%s</classifier>' "$classifier"
        printf '<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>\n'
    done < <(locked)
    printf '</dependencies></project>\n'
}
if ! maven_repo_ok; then
    say "fetching the locked Maven artifacts into $MAVEN_REPO (log: $LOG_DIR/maven.log)"
    mkdir -p "$MAVEN_REPO"
    pom_dir=$(mktemp -d "$LOG_DIR/maven-pom.XXXXXX")
    locked_pom >"$pom_dir/pom.xml"
    mvn --batch-mode --no-transfer-progress -f "$pom_dir/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" \
        dependency:resolve >"$LOG_DIR/maven.log" 2>&1 || {
        log_tail "$LOG_DIR/maven.log"
        die "mvn dependency:resolve of the locked artifacts failed"
    }
    rm -rf "$pom_dir"
    if ! maven_repo_ok; then
        (cd "$MAVEN_REPO" && locked | sha256sum --check --quiet --strict 2>&1 | head -5 | sed 's/^/    /' >&2) || true
        die "the Maven artifacts in $MAVEN_REPO do not match the sha256 of ${MAVEN_LOCKS[*]}"
    fi
fi

flock -u 9
exec 9>&-

# The mirror: a plain HTTP file server on a free loopback port, for the whole run.
python3 -u -m http.server --bind 127.0.0.1 --directory "$MAVEN_REPO" 0 >"$LOG_DIR/maven-mirror.log" 2>&1 </dev/null &
MIRROR_PID=$!
MAVEN_MIRROR=""
for ((i = 0; i < 100; i++)); do # 10 s
    port=$(sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$LOG_DIR/maven-mirror.log")
    if [[ -n $port ]]; then
        MAVEN_MIRROR=http://127.0.0.1:$port
        break
    fi
    kill -0 "$MIRROR_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n $MAVEN_MIRROR ]] || {
    log_tail "$LOG_DIR/maven-mirror.log"
    die "the loopback Maven mirror did not start"
}

export KROBS_TEST_SERVICES=1
export DOCKER_HOST
export KROBS_TEST_BASE_IMAGE=$BASE_IMAGE
export KROBS_TEST_BASE_PYTHON=krobs-test/debian-python:1
export KROBS_TEST_BASE_RUBY=krobs-test/debian-ruby:1
export KROBS_TEST_BASE_BASH=krobs-test/debian-bash:1
export KROBS_TEST_BASE_JRE=krobs-test/debian-jre:2
export KROBS_TEST_REGISTRY_BIN=$REGISTRY_BIN
export KROBS_TEST_MOTO_BIN=$MOTO_BIN
export KROBS_TEST_MAVEN_REPO=$MAVEN_REPO
export KROBS_TEST_MAVEN_MIRROR=$MAVEN_MIRROR
say "ready in $((SECONDS - START)) s: DOCKER_HOST=$DOCKER_HOST KROBS_TEST_BASE_IMAGE=$BASE_IMAGE"
say "  KROBS_TEST_REGISTRY_BIN=$REGISTRY_BIN KROBS_TEST_MOTO_BIN=$MOTO_BIN"
say "  KROBS_TEST_MAVEN_MIRROR=$MAVEN_MIRROR (serving $MAVEN_REPO)"

# ---------------------------------------------------------------------------------------------
# Tests (or the benchmark)
# ---------------------------------------------------------------------------------------------
# The ten slowest tests of the run, from nextest's JUnit report (.config/nextest.toml).
slowest() {
    [[ -f $1 ]] || return 0
    say "the ten slowest tests (from $1):"
    python3 - "$1" <<'PY' >&2
import sys, xml.etree.ElementTree as ET
cases = [(float(c.get("time", 0)), c.get("classname", ""), c.get("name", ""))
         for c in ET.parse(sys.argv[1]).iter("testcase")]
for t, binary, name in sorted(cases, reverse=True)[:10]:
    print(f"    {t:8.1f} s  {binary} {name}")
PY
}
cd "$REPO"
rc=0
if [[ -n $BENCH ]]; then
    say "cargo bench --bench $BENCH $*"
    cargo bench --bench "$BENCH" "$@" || rc=$?
else
    say "cargo nextest run --workspace --no-fail-fast $*"
    junit=${CARGO_TARGET_DIR:-$REPO/target}/nextest/default/junit.xml
    rm -f "$junit"
    cargo nextest run --workspace --no-fail-fast "$@" || rc=$?
    slowest "$junit" || true
fi
exit "$rc"
