#!/usr/bin/env bash
# xfer.sh - move a set of files larger than one device call can carry, in resumable chunks.
#
# The device tool carries at most 64 MiB a call (repo included), and a GPU machine keeps /tmp
# between calls sent back to back. So: tar the files here, split the tar into parts, carry one
# part per call (each part is a folder holding the chunk and the checksums, so one carry path a
# call suffices), collect them in /tmp there, and join, check and extract them in a later call.
#
# Here (repository root or anywhere inside it):
#   scripts/xfer.sh pack NAME PATH...   tar PATH... (stored as given, relative to the current
#                                       directory) into .xfer/NAME/KK/part-KK (KK = 00, 01, ...;
#                                       each at most $XFER_PART_BYTES) + SHA256SUMS + MANIFEST;
#                                       a second run with unchanged inputs does nothing
#   scripts/xfer.sh plan NAME           print the device calls to make: carry path + command
# There (the GPU machine, from the repository root), one device call per part:
#   scripts/xfer.sh receive NAME KK     copy the carried .xfer/NAME/KK/part-KK to
#                                       $XFER_RECV_DIR/NAME/ (default /tmp/xfer), check its sha256,
#                                       print what is still missing; a part already there is skipped
#   scripts/xfer.sh unpack NAME DEST    join the parts, check the whole tar's sha256, extract in DEST
#   scripts/xfer.sh status NAME         parts received and missing (exit 1 while any is missing)
#
# Layout of .xfer/NAME/ (git-ignored):
#   SHA256SUMS   sha256 of the whole tar (NAME.tar) and of each part, `sha256sum` format
#   MANIFEST     the packed paths, one a line
#   INPUTS       size, mtime and path of every packed file (what makes a re-pack a no-op)
#   KK/          part-KK, and copies of SHA256SUMS and MANIFEST: the folder a device call carries
# Environment: XFER_PART_BYTES (default 33554432 = 32 MiB: a device call carries 64 MiB together with
# the tracked files, 25 MB at the end of Nov 2026; `plan` says when a part no longer fits beside them),
# XFER_DIR (default <repo>/.xfer), XFER_RECV_DIR (default /tmp/xfer).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XFER_DIR=${XFER_DIR:-$REPO/.xfer}
RECV_DIR=${XFER_RECV_DIR:-/tmp/xfer}
PART_BYTES=${XFER_PART_BYTES:-33554432}
CALL_BYTES=${XFER_CALL_BYTES:-67108864}  # what one device call carries: the tracked files and the carried paths

die() { echo "xfer: error: $*" >&2; exit 1; }
log() { echo "xfer: $*" >&2; }

check_name() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bad NAME '$1': letters, digits, '.', '_', '-' only"
}

# part ids from a SHA256SUMS file: "part-03" -> 03
parts_in() { sed -n 's/^[0-9a-f]\{64\}  part-\([0-9]\{2,\}\)$/\1/p' "$1"; }

inputs_of() {  # size, mtime and path of every file below the given paths, sorted
    find "$@" \( -type f -o -type l \) -printf '%s %T@ %p\n' | LC_ALL=C sort -k3
}

pack() {
    local name=$1; shift
    check_name "$name"
    [ $# -gt 0 ] || die "pack $name: no paths given"
    local p
    for p in "$@"; do
        [ -e "$p" ] || die "pack $name: $p does not exist"
        case $p in /*|../*|*/../*|..) die "pack $name: give paths below the current directory, not $p" ;; esac
    done
    [[ $PART_BYTES =~ ^[0-9]+$ ]] && [ "$PART_BYTES" -gt 0 ] || die "XFER_PART_BYTES must be a positive integer"
    local dir="$XFER_DIR/$name" inputs
    inputs=$(printf 'part_bytes %s\n' "$PART_BYTES"; printf 'path %s\n' "$@"; inputs_of "$@")
    if [ -f "$dir/INPUTS" ] && [ "$(cat "$dir/INPUTS")" = "$inputs" ] && verify_packed "$dir"; then
        log "$name: unchanged, $(parts_in "$dir/SHA256SUMS" | wc -l) parts in $dir"
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    local tmp="$dir/.staging"
    mkdir "$tmp"
    printf '%s\n' "$@" > "$dir/MANIFEST"
    # no compression: what this moves is mostly wheels (zip files already)
    tar --sort=name --owner=0 --group=0 --numeric-owner -cf "$tmp/$name.tar" -- "$@"
    ( cd "$tmp" && split -b "$PART_BYTES" -d -a 2 "$name.tar" part- )
    local n
    n=$(find "$tmp" -name 'part-*' | wc -l)
    [ "$n" -le 100 ] || die "pack $name: $n parts; more than 100 needs a larger XFER_PART_BYTES"
    ( cd "$tmp" && sha256sum "$name.tar" part-* ) > "$dir/SHA256SUMS"
    local k
    for k in $(parts_in "$dir/SHA256SUMS"); do
        mkdir "$dir/$k"
        mv "$tmp/part-$k" "$dir/$k/"
        cp "$dir/SHA256SUMS" "$dir/MANIFEST" "$dir/$k/"
    done
    local bytes
    bytes=$(stat -c %s "$tmp/$name.tar")
    rm -rf "$tmp"
    printf '%s\n' "$inputs" > "$dir/INPUTS"
    log "$name: $n parts of at most $PART_BYTES bytes ($bytes bytes of tar) in $dir"
}

verify_packed() {  # every part listed in SHA256SUMS present with its sums
    local dir=$1 k
    [ -f "$dir/SHA256SUMS" ] || return 1
    for k in $(parts_in "$dir/SHA256SUMS"); do
        [ -f "$dir/$k/part-$k" ] && [ -f "$dir/$k/SHA256SUMS" ] || return 1
        ( cd "$dir/$k" && grep "  part-$k\$" SHA256SUMS | sha256sum -c --quiet - >/dev/null 2>&1 ) || return 1
    done
}

plan() {
    local name=$1 dir="$XFER_DIR/$1"
    check_name "$name"
    [ -f "$dir/SHA256SUMS" ] || die "$name: not packed here ($dir/SHA256SUMS missing): run scripts/xfer.sh pack $name PATH..."
    local parts k i=0 total
    parts=$(parts_in "$dir/SHA256SUMS")
    total=$(echo "$parts" | wc -l)
    echo "# $name: $total device calls, one per part, sent back to back (the machine keeps /tmp while warm)"
    for k in $parts; do
        i=$((i + 1))
        echo "call $i/$total: carry [\".xfer/$name/$k\"]  command: scripts/xfer.sh receive $name $k"
    done
    echo "# then, in the call that uses them (no carry needed): scripts/xfer.sh unpack $name DEST"
    local tracked largest
    tracked=$(git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 stat -c %s 2>/dev/null) | awk '{s += $1} END {print s + 0}')
    largest=$(for k in $parts; do stat -c %s "$dir/$k/part-$k"; done | sort -n | tail -1)
    if [ $((tracked + largest)) -gt "$CALL_BYTES" ]; then
        echo "# WARNING: a part ($largest bytes) and the tracked files ($tracked bytes) exceed the $CALL_BYTES a call carries: pack again with a smaller XFER_PART_BYTES"
    fi
}

missing_parts() {  # parts listed in the received SHA256SUMS but not in the receive folder
    local into=$1 k
    for k in $(parts_in "$into/SHA256SUMS"); do
        [ -f "$into/part-$k" ] || printf '%s ' "$k"
    done
}

receive() {
    local name=$1 k=$2
    check_name "$name"
    [[ $k =~ ^[0-9]{2,}$ ]] || die "receive $name: part '$k' is not a part number like 00"
    local src="$XFER_DIR/$name/$k" into="$RECV_DIR/$name"
    mkdir -p "$into"
    if [ -f "$into/part-$k" ]; then
        log "$name: part $k already received, skipped"
    else
        [ -f "$src/part-$k" ] || die "$name: part $k was not carried ($src/part-$k missing): carry .xfer/$name/$k in this call"
        [ -f "$src/SHA256SUMS" ] || die "$name: $src/SHA256SUMS missing"
        if [ -f "$into/SHA256SUMS" ] && ! cmp -s "$src/SHA256SUMS" "$into/SHA256SUMS"; then
            # a new pack of NAME: the parts received so far belong to the old one
            log "$name: part $k belongs to a different pack than the parts received before; starting over"
            rm -f "$into"/part-* "$into/SHA256SUMS" "$into/MANIFEST"
        fi
        cp "$src/SHA256SUMS" "$src/MANIFEST" "$into/"
        cp "$src/part-$k" "$into/part-$k.tmp"
        local want got
        want=$(sed -n "s/^\([0-9a-f]\{64\}\)  part-$k\$/\1/p" "$into/SHA256SUMS")
        got=$(sha256sum "$into/part-$k.tmp" | cut -d' ' -f1)
        [ -n "$want" ] || die "$name: part $k is not listed in SHA256SUMS"
        if [ "$want" != "$got" ]; then
            rm -f "$into/part-$k.tmp"
            die "$name: part $k sha256 mismatch (got $got, want $want): carry it again"
        fi
        mv "$into/part-$k.tmp" "$into/part-$k"
        log "$name: part $k received ($(stat -c %s "$into/part-$k") bytes, sha256 ok)"
    fi
    status "$name" || true
}

status() {
    local name=$1 into="$RECV_DIR/$1"
    check_name "$name"
    [ -f "$into/SHA256SUMS" ] || { echo "xfer: $name: nothing received yet in $into"; return 1; }
    local all have missing
    all=$(parts_in "$into/SHA256SUMS" | wc -l)
    missing=$(missing_parts "$into")
    have=$((all - $(wc -w <<<"$missing")))
    if [ -z "$missing" ]; then
        echo "xfer: $name: all $all parts received; next: scripts/xfer.sh unpack $name DEST"
    else
        echo "xfer: $name: $have of $all parts received; missing: ${missing% }"
        return 1
    fi
}

unpack() {
    local name=$1 dest=$2 into="$RECV_DIR/$1"
    check_name "$name"
    [ -f "$into/SHA256SUMS" ] || die "$name: nothing received in $into (send the parts first: scripts/xfer.sh plan $name)"
    local missing
    missing=$(missing_parts "$into")
    [ -z "$missing" ] || die "$name: missing parts ${missing% } in $into (carry .xfer/$name/KK and run scripts/xfer.sh receive $name KK for each)"
    local want got k
    want=$(sed -n "s/^\([0-9a-f]\{64\}\)  $name\.tar\$/\1/p" "$into/SHA256SUMS")
    [ -n "$want" ] || die "$name: SHA256SUMS has no line for $name.tar"
    got=$(for k in $(parts_in "$into/SHA256SUMS"); do cat "$into/part-$k"; done | sha256sum | cut -d' ' -f1)
    [ "$want" = "$got" ] || die "$name: the joined tar's sha256 is $got, not $want: parts from different packs? (rm -rf $into and send them again)"
    mkdir -p "$dest"
    for k in $(parts_in "$into/SHA256SUMS"); do cat "$into/part-$k"; done | tar -xf - -C "$dest"
    log "$name: extracted into $dest: $(paste -sd' ' "$into/MANIFEST")"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    pack) [ $# -ge 2 ] || die "usage: xfer.sh pack NAME PATH..."; pack "$@" ;;
    plan) [ $# -eq 1 ] || die "usage: xfer.sh plan NAME"; plan "$1" ;;
    receive) [ $# -eq 2 ] || die "usage: xfer.sh receive NAME KK"; receive "$1" "$2" ;;
    unpack) [ $# -eq 2 ] || die "usage: xfer.sh unpack NAME DEST"; unpack "$1" "$2" ;;
    status) [ $# -eq 1 ] || die "usage: xfer.sh status NAME"; status "$1" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
