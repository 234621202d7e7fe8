#!/bin/sh
# The Dockerfile's fetch stage: `fetch-jars.sh LOCK REPOSITORY DEST [flat|tree]` downloads
# exactly the files of LOCK (`sha256  path` lines, `#` comments) from the Maven repository
# REPOSITORY into DEST, with curl or else wget, and fails on the first file that cannot be
# fetched or does not hash to its pinned sha256. `flat` (the default) puts every file in DEST
# itself (a class path folder); `tree` keeps its path in the repository (a Maven layout, as
# coursier's cache has). A URL's `user:password@` is never printed.
set -eu
lock=$1
repo=${2%/}
dest=$3
layout=${4:-flat}
name=${lock##*/}
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
count=0
for entry in $(grep -vE '^[[:space:]]*(#|$)' "$lock" | tr -s ' \t' '=='); do
    pinned=${entry%%=*}
    path=${entry#*=}
    case $layout in
    tree) file=$dest/$path && mkdir -p "${file%/*}" ;;
    *) file=$dest/${path##*/} ;;
    esac
    tries=1
    until get "$repo/$path" "$file"; do
        if [ "$tries" -ge 3 ]; then
            echo "cannot fetch $shown/$path (3 tries): check MAVEN_REPOSITORY and the network of the build" >&2
            exit 1
        fi
        sleep "$tries"
        tries=$((tries + 1))
    done
    actual=$(sha256sum "$file" | cut -d ' ' -f 1)
    if [ "$actual" != "$pinned" ]; then
        echo "$shown/$path has sha256 $actual, not $pinned as $name pins: refusing it (a repository serving other bytes under a released version is not to be trusted)" >&2
        exit 1
    fi
    count=$((count + 1))
done
chmod -R a+rX "$dest"
echo "fetched $count files from $shown, each with the sha256 $name pins"
