# shellcheck shell=bash
# Shared by buildrawhide, buildbranched and run-pungi; sourced, not run.
#
# A script sets its variables, then runs each step through `step`, which
# logs the step to $logdir/<step>.log, records its time in the manifest's
# `steps` list, sends the fedmsg-style events, and stops the whole script
# with one line naming the step and its log when the step fails.
#
# The tools pass one manifest along; here it lives in $MANIFEST and every
# tool reads it with --manifest and replaces it atomically with --output,
# so a failed step leaves the previous manifest intact for the post-mortem.

PROG=${PROG:-${0##*/}}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $*" >&2
    echo "Try '$PROG --help'." >&2
    exit 2
}

# Tools from RELENG_BIN (a build directory) first, then PATH.
releng_path() {
    if [[ -n ${RELENG_BIN:-} ]]; then
        PATH="$RELENG_BIN:$PATH"
    fi
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t is not installed (set RELENG_BIN or PATH)"
    done
}

# The directory under which every path lives: "/" in production, a
# temporary tree in tests and the demo. Printed without a trailing slash.
releng_root() {
    local r=${RELENG_ROOT:-/}
    r=${r%/}
    printf '%s' "$r"
}

now_s() { date +%s.%N; }

# notify EVENT [STEP]: one JSON event on the stdin of $NOTIFY_CMD, as
# fedmsg got them. A broken notifier is a warning, never a failed compose.
notify() {
    [[ -n ${NOTIFY_CMD:-} ]] || return 0
    local event=$1 step=${2:-}
    local topic="org.fedoraproject.${ENVIRONMENT:-production}.compose.${DIST:-unknown}.${event}"
    jq -cn --arg topic "$topic" --arg event "$event" --arg step "$step" \
        --arg dist "${DIST:-}" --arg arch "${ARCH:-}" --arg date "${DATE:-}" \
        --arg log "${step:+$logdir/$step.log}" --arg time "$(date +%s)" \
        '{topic: $topic, event: $event, dist: $dist, arch: $arch, date: $date,
          time: ($time | tonumber)}
         + (if $step != "" then {step: $step, log: $log} else {} end)' |
        sh -c "$NOTIFY_CMD" >/dev/null 2>&1 ||
        echo "$PROG: warning: --notify command failed for event $event" >&2
}

# manifest_edit JQ-FILTER [jq args…]: rewrites $MANIFEST through jq,
# atomically.
manifest_edit() {
    local filter=$1
    shift
    jq "$@" "$filter" "$MANIFEST" >"$MANIFEST.tmp" && mv -f "$MANIFEST.tmp" "$MANIFEST"
}

# manifest_get JQ-FILTER: one raw value of the manifest.
manifest_get() {
    jq -r "$1" "$MANIFEST"
}

# A fresh manifest, unless this run continues one.
manifest_init() {
    [[ -s $MANIFEST ]] && return 0
    printf '%s\n' '{"header": {"type": "releng-manifest", "version": "1.0"}, "payload": {}}' >"$MANIFEST"
}

# tool NAME [SUBCOMMAND] ARGS…: a pipeline tool reading and replacing
# $MANIFEST (the manifest options go last, after any subcommand).
tool() {
    "$@" --manifest "$MANIFEST" --output "$MANIFEST"
}

# step NAME COMMAND [ARGS…]: runs one step with set -e in force inside it.
step() {
    local name=$1
    shift
    local log="$logdir/$name.log" started rc
    started=$(now_s)
    notify "$name.start" "$name"
    echo "$PROG: $name" >&2
    # A subshell outside any `if`/`||` keeps `set -e` working inside the
    # step's functions: bash ignores -e in a condition's whole call tree.
    set +e
    (
        set -euo pipefail
        "$@"
    ) >>"$log" 2>&1
    rc=$?
    set -e
    if [[ $rc -ne 0 ]]; then
        notify "$name.failed" "$name"
        echo "$PROG: step $name failed (exit $rc); see $log" >&2
        exit 1
    fi
    local status=complete
    if [[ -e $logdir/.skipped ]]; then
        status=skipped
        rm -f "$logdir/.skipped"
    fi
    # shellcheck disable=SC2016 # jq variables, not shell ones
    manifest_edit '.payload.steps += [{name: $n, status: $s, started_at: ($t | tonumber | floor),
        duration_s: ((($e | tonumber) - ($t | tonumber)) * 1000 | round / 1000), log: $l}]' \
        --arg n "$name" --arg s "$status" --arg t "$started" --arg e "$(now_s)" --arg l "$log"
    notify "$name.complete" "$name"
}

# skip REASON: inside a step, records that it had nothing to do.
skip() {
    echo "skipped: $*"
    : >"$logdir/.skipped"
}

# publish_ostree SRC DEST: rsync an ostree repo so a client of DEST never
# sees a summary or ref naming an object DEST lacks. Objects, deltas and
# config go first; refs and summary second; pruned objects are deleted
# last. --delay-updates makes each pass switch its files in at its end.
publish_ostree() {
    local src=${1%/}/ dest=${2%/}/
    local rsync=${RSYNC:-rsync}
    local opts=(-rlptDH --delay-updates --exclude=/tmp/ --exclude=/.lock --exclude=/state/)
    mkdir -p "$dest"
    $rsync "${opts[@]}" --exclude=/refs/ --exclude=/summary --exclude=/summary.sig \
        --exclude=/config "$src" "$dest"
    # config before refs: a new repo is complete before it looks like one.
    $rsync "${opts[@]}" --exclude=/summary --exclude=/summary.sig "$src" "$dest"
    $rsync "${opts[@]}" "$src" "$dest"
    $rsync "${opts[@]}" --delete --delete-after "$src" "$dest"
}

# publish_tree SRC DEST: the 2014 two-pass rsync of a mash tree.
publish_tree() {
    local src=${1%/}/ dest=${2%/}/
    local rsync=${RSYNC:-rsync}
    mkdir -p "$dest"
    $rsync -rlptDHh --delay-updates "$src" "$dest"
    $rsync -rlptDHh --delay-updates --delete --delete-after "$src" "$dest"
}

# checksum_images DIR: a CHECKSUM file in `sha256sum --tag` format for
# the images qcow2-build made in DIR, written atomically. The digests come
# from the manifest: qcow2-build hashed each image as it wrote it, and
# hashing gigabytes again buys nothing.
checksum_images() {
    local dir lines
    dir=$(cd "$1" && pwd -P)
    # shellcheck disable=SC2016 # jq variables, not shell ones
    lines=$(jq -r --arg dir "$dir" '
        [(.payload.images // [])[] | select((.path | sub("/[^/]*$"; "")) == $dir)]
        | group_by(.path) | map(last)[]
        | "SHA256 (\(.path | split("/") | last)) = \(.sha256)"' "$MANIFEST")
    [[ -n $lines ]] || die "no images of $dir in the manifest"
    printf '%s\n' "$lines" >"$dir/.CHECKSUM.tmp"
    mv -f "$dir/.CHECKSUM.tmp" "$dir/CHECKSUM"
    cat "$dir/CHECKSUM"
}

# The arguments every script shares before its positionals.
parse_common_options() {
    ARGS=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        --notify)
            [[ $# -ge 2 ]] || usage_error "--notify needs a command"
            NOTIFY_CMD=$2
            shift 2
            ;;
        --notify=*)
            NOTIFY_CMD=${1#--notify=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            ARGS+=("$@")
            break
            ;;
        -*) usage_error "unknown option $1" ;;
        *)
            ARGS+=("$1")
            shift
            ;;
        esac
    done
}

check_date() {
    [[ $1 =~ ^[0-9]{8}(\.[0-9]+)?$ ]] || usage_error "DATE '$1' is not YYYYMMDD[.N]"
}

check_arch() {
    [[ $1 =~ ^[a-z0-9_]+$ ]] || usage_error "ARCH '$1' is not an architecture name"
}

check_environment() {
    case $1 in
    production | staging | development) ;;
    *) usage_error "ENVIRONMENT '$1' is not production, staging or development" ;;
    esac
}
