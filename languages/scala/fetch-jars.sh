#!/bin/sh
# The Dockerfile's fetch stage: downloads exactly the jars of ammonite.lock (`sha256  path`
# lines) from the Maven repository $1 into $2, with curl or else wget, and fails on the first
# jar that cannot be fetched or does not hash to its pinned sha256. A URL's `user:password@`
# is never printed.
set -eu
lock=/tmp/ammonite.lock
repo=${1%/}
dest=$2
shown=$(printf '%s' "$repo" | sed 's#//[^/@]*@#//#')
if command -v curl >/dev/null 2>&1; then
    get() { curl -fsSL --retry 3 --connect-timeout 30 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
    get() { wget -q -O "$2" "$1"; }
else
    echo "the Scala runtime's fetch stage needs curl or wget: set FETCH_IMAGE to an image that has one" >&2
    exit 1
fi
mkdir -p "$dest"
grep -vE '^[[:space:]]*(#|$)' "$lock" | while read -r pinned path; do
    jar=$dest/${path##*/}
    tries=1
    until get "$repo/$path" "$jar"; do
        if [ "$tries" -ge 3 ]; then
            echo "cannot fetch $shown/$path (3 tries): check MAVEN_REPOSITORY and the network of the build" >&2
            exit 1
        fi
        sleep "$tries"
        tries=$((tries + 1))
    done
    actual=$(sha256sum "$jar" | cut -d ' ' -f 1)
    if [ "$actual" != "$pinned" ]; then
        echo "$shown/$path has sha256 $actual, not $pinned as ammonite.lock pins: refusing it (a repository serving other bytes under a released version is not to be trusted)" >&2
        exit 1
    fi
done
chmod -R a+rX "$dest"
echo "fetched $(ls "$dest" | wc -l) jars from $shown, each with the sha256 ammonite.lock pins"
