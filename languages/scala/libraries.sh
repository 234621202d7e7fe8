#!/bin/sh
# The libraries of Ammonite files (`import $ivy.`group::artifact:version``), checked against
# what the image holds. A krob never downloads at run time, so a library must be declared in
# dependencies.sc and pinned in dependencies.lock to be fetched into the image at build time.
#
#   libraries.sh imports FILE...        the libraries FILE imports, one a line, sorted
#   libraries.sh lock LOCK              the libraries LOCK was made for (its `# library` lines)
#   libraries.sh check KNOWN FILE...    fails, naming the first library a FILE imports that the
#                                       list KNOWN (one a line, as `imports` prints) lacks
#
# Coordinates are printed as Maven's `group:artifact:version`: `group::artifact` appends the
# Scala binary version to the artifact and `group:::artifact` the full one, as Ammonite does
# (those of ammonite.lock).
set -eu
scala=2.13.17
binary=2.13

# Coordinates, as written in backquotes, on stdin -> normalized, sorted, unique.
normalize() {
    sed -e "s/^\([^:]*\):::\([^:]*\):/\1:\2_$scala:/" -e "s/^\([^:]*\)::\([^:]*\):/\1:\2_$binary:/" | sort -u
}

imports() {
    grep -hE '^[[:space:]]*import[[:space:]]+[$]ivy[.]' "$@" | grep -oE '`[^`]*`' | tr -d '`' | normalize
}

case ${1:-} in
imports)
    shift
    imports "$@"
    ;;
lock)
    sed -n 's/^#[[:space:]]*library[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$2" | normalize
    ;;
check)
    known=$2
    shift 2
    for file; do
        for library in $(imports "$file"); do
            if ! grep -qxF "$library" "$known"; then
                echo "$file imports \`$library\` (\`import \$ivy\`), which the image does not hold: a krob never downloads at run time; add it to languages/scala/dependencies.sc and re-lock with lock.sc (README, \"Scala\")" >&2
                exit 1
            fi
        done
    done
    ;;
*)
    echo "usage: libraries.sh imports FILE... | lock LOCK | check KNOWN FILE..." >&2
    exit 2
    ;;
esac
