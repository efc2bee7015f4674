#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the libFuzzer targets of fuzz/ (see fuzz/README.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 20, as in CI; longer by hand, e.g. 600).
# TARGET: context record keyset json decoder ini xml wrapkey stream (default: all).
# wrapkey: wrapped private keys (FORMATS.md §8) on the decoder path.
# Builds build-fuzz (clang, -DKMSENV_FUZZ=ON; KMSENV_FUZZ_BUILD_DIR
# overrides), runs each target on a copy of its seed corpus fuzz/corpus/T
# (the repo's corpus never grows), prints executions and coverage per
# target, and exits non-zero on any crash, leak, timeout or OOM; the
# reproducer and the log stay in BUILD/fuzz-run/T/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-20}
shift || true
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=()
    for f in fuzz/fuzz_*.c; do
        t=${f#fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi

build=${KMSENV_FUZZ_BUILD_DIR:-$root/build-fuzz}
cc=${KMSENV_FUZZ_CC:-clang}
cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DKMSENV_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
tlist=()
for t in "${targets[@]}"; do tlist+=("fuzz_$t"); done
cmake --build "$build" -j"$(nproc)" --target "${tlist[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/test/lsan.supp:print_suppressions=0}

run=$build/fuzz-run
fail=0
printf '%-8s %6s %12s %9s %6s %7s %7s  %s\n' target secs execs execs/s cov ft corpus result
for t in "${targets[@]}"; do
    bin=$build/fuzz_$t
    seeds=fuzz/corpus/$t
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "$t: no target $bin or no seed corpus $seeds" >&2
        fail=1
        continue
    fi
    dir=$run/$t
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -R "$seeds/." "$dir/corpus/"
    start=$(date +%s)
    set +e
    "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=25 \
        -rss_limit_mb=2560 -artifact_prefix="$dir/artifacts/" \
        "$dir/corpus" >"$dir/log" 2>&1
    rc=$?
    set -e
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    rate=-
    if [ -n "$execs" ] && [ "$took" -gt 0 ]; then rate=$((execs / took)); fi
    result=ok
    if [ $rc -ne 0 ]; then
        result="FAILED (exit $rc)"
        fail=1
    fi
    printf '%-8s %6s %12s %9s %6s %7s %7s  %s\n' "$t" "$took" "${execs:--}" \
        "$rate" "${cov:--}" "${ft:--}" "${corp:--}" "$result"
    if [ $rc -ne 0 ]; then
        echo "---- $t: tail of $dir/log" >&2
        grep -v -E '^#[0-9]+ ' "$dir/log" | tail -n 40 >&2
        for a in "$dir"/artifacts/*; do
            [ -e "$a" ] && echo "reproducer: $a (run: $bin $a)" >&2
        done
    fi
done
exit $fail
