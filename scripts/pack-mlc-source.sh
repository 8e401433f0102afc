#!/usr/bin/env bash
# pack-mlc-source.sh - pack mlc-llm's Python package (python/ of mlc-ai/mlc-llm) from a local git
# checkout into a tarball that travels beside the repo, never inside it.
#
#   scripts/pack-mlc-source.sh GIT_DIR [COMMIT] [OUT]
#     GIT_DIR  a clone or bare mirror of https://github.com/mlc-ai/mlc-llm
#     COMMIT   default 79d603f085f50500e9509fa01785ffa7ecfaaa93 (2026-07-23, the one issue 14 used)
#     OUT      default .gpu/mlc-llm-src.tar.gz (git-ignored)
#
# Nothing is built: the tarball holds python/mlc_llm as it is in git (pure Python) plus a
# MLC_LLM_COMMIT file. llmperf_nb.drivers.mlc_compat imports it from $MLC_LLM_SOURCE (the unpacked
# folder), or from .gpu/mlc-llm-src/ when that variable is unset. The project never commits this
# source.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GIT_DIR=${1:?usage: pack-mlc-source.sh GIT_DIR [COMMIT] [OUT]}
COMMIT=${2:-79d603f085f50500e9509fa01785ffa7ecfaaa93}
OUT=${3:-$REPO/.gpu/mlc-llm-src.tar.gz}
full=$(git -C "$GIT_DIR" rev-parse --verify "$COMMIT^{commit}")
mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/mlc-llm-src"
git -C "$GIT_DIR" archive "$full" python/mlc_llm LICENSE | tar -x -C "$tmp/mlc-llm-src"
mv "$tmp/mlc-llm-src/python/mlc_llm" "$tmp/mlc-llm-src/mlc_llm"
rmdir "$tmp/mlc-llm-src/python"
printf '%s\n%s\n' "$full" "$(git -C "$GIT_DIR" show -s --format=%cI "$full")" > "$tmp/mlc-llm-src/MLC_LLM_COMMIT"
tar -C "$tmp" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -czf "$OUT.tmp" mlc-llm-src
mv "$OUT.tmp" "$OUT"
echo "$OUT: mlc-llm $full ($(du -h "$OUT" | cut -f1))"
echo "unpack: tar -xzf $OUT -C DIR  (then MLC_LLM_SOURCE=DIR/mlc-llm-src)"
