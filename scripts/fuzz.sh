#!/usr/bin/env bash
# Runs each libFuzzer harness of a fuzz build for a while on its seed corpus
# (tests/fuzz/corpus/<name>/, read only) and on what it found before
# (BUILD/fuzz-corpus/<name>/, where new inputs go), then prints executions,
# executions per second and crashes per harness. A crash, leak or broken
# property stops that harness; its input is kept as BUILD/fuzz-artifacts/<name>-…
# and the script exits 1 at the end.
# Usage: scripts/fuzz.sh BUILD SECONDS [NAME…]   (no NAME: every harness)
#        FUZZ_JOBS=N: harnesses run at once (default: the number of cores)
set -uo pipefail
build=$1 seconds=$2
shift 2
src=$(cd "$(dirname "$0")/.." && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$src"/tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
# as many harnesses at once as there are cores (FUZZ_JOBS): each still runs
# its SECONDS on a core of its own
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

run_one() {
  local name=$1 log="$build/fuzz-logs/$1.log"
  mkdir -p "$build/fuzz-corpus/$name"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$build/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048 \
      -artifact_prefix="$build/fuzz-artifacts/$name-" "$build/fuzz-corpus/$name" "$src/tests/fuzz/corpus/$name" \
      >"$log" 2>&1
  echo $? >"$build/fuzz-logs/$name.rc"
}

for name in "${names[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  rm -f "$build/fuzz-logs/$name.rc"
  run_one "$name" &
done
wait

failed=0
printf '%-16s %12s %10s %8s  %s\n' harness executions exec/s crashes result
for name in "${names[@]}"; do
  log="$build/fuzz-logs/$name.log"
  rc=$(cat "$build/fuzz-logs/$name.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  crashes=0 result=ok
  if [ "$rc" -ne 0 ]; then
    crashes=1 result="CRASH (exit $rc): $log"
    failed=1
  fi
  printf '%-16s %12s %10s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "$crashes" "$result"
done
exit $failed
