#!/usr/bin/env bash
# Instructions per iteration of every variant of one bench, counted by
# callgrind (repeatable where wall-clock time is not: a shared machine), with
# the ratio to the first variant (the anchor).
#
#   benches/callgrind.sh overhead|inspect [ITERS]
#
# (inspect: one body, the 300 B one unless INSPECT_BODY names another, e.g.
# INSPECT_BODY="4KiB, name last, done absent"; use ITERS of a few hundred.)
# Not for `cancel`: its variants do untimed set-up inside each run (building
# and polling the futures to drop), which callgrind would count too.
#
# Builds the bench (release, with debug symbols off as usual), then runs it
# once per variant under valgrind with BENCH_PROFILE=<variant>, counting only
# inside `support::profile_loop` (see benches/support/mod.rs).
set -euo pipefail
bench=${1:?usage: benches/callgrind.sh overhead|inspect [ITERS]}
iters=${2:-20000}
cd "$(dirname "$0")/.."
exe=$(cargo bench --bench "$bench" --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-34s %14s %10s\n' variant "instr/iter" "x anchor"
anchor=""
while IFS= read -r variant; do
  file="$out/cg.$RANDOM"
  BENCH_PROFILE="$variant" BENCH_PROFILE_ITERS="$iters" \
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_loop*' \
    --callgrind-out-file="$file" "$exe" --bench >/dev/null 2>&1
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
  per=$(( total / iters ))
  [ -z "$anchor" ] && anchor=$per
  printf '%-34s %14d %10s\n' "$variant" "$per" "$(awk -v a="$per" -v b="$anchor" 'BEGIN{printf "%.3f", a/b}')"
done < <(BENCH_PROFILE=list "$exe" --bench 2>/dev/null)
