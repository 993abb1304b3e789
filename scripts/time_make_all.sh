#!/usr/bin/env bash
# `make all`, one target at a time, each timed: appends
# target,start,end,seconds,exit_code,load_1m,executor,cpu,lora_step_ms to results/perf/make-all.csv (TIMES=<file>
# moves it), which `make perf` reads into its make-all table; executor is BENCH_EXECUTOR (the
# Makefile's default when unset), so `BENCH_EXECUTOR=ray scripts/time_make_all.sh` logs beside it. The
# targets are the prerequisites of `all:` in the Makefile, in order, so the list never drifts from it; arguments go to every make call (e.g. MODEL=smollm2-135m).
# TARGETS="accuracy hallucination" times only those (in that order; a target timed alone may
# find less in the caches than it would after the targets before it in `make all`).
# Like `make all` it stops at the first failing target (its line is logged with the exit code).
# Each call also runs the `pocket-model-if-stale` check (a few seconds), which `make all` runs once.
set -u
cd "$(dirname "$0")/.."
log=${TIMES:-results/perf/make-all.csv}
mkdir -p "$(dirname "$log")"
header="target,start,end,seconds,exit_code,load_1m,executor,cpu,lora_step_ms"
first=$(head -n 1 "$log" 2>/dev/null)
if [ ! -s "$log" ]; then
    echo "$header" > "$log"
elif [ "$first" = "target,start,end,seconds,exit_code,load_1m,executor" ] ||
     [ "$first" = "target,start,end,seconds,exit_code,load_1m,executor,cpu" ]; then
    sed -i "1s/.*/$header/" "$log"   # a log from before the cpu / lora_step_ms columns: its rows read with them empty
fi
executor=${BENCH_EXECUTOR:-$(awk '/^export BENCH_EXECUTOR \?=/ {print $4}' Makefile)}   # else the Makefile's default
executor=${executor:-local}   # a Makefile without one runs studies here
# the machine: its speed changes between sessions (1.3-1.5x), and machines of one CPU name differ,
# so each row carries the CPU model and the bench's LoRA step on this machine, timed once before
# the first target on a quiet machine (`bench perf --speed`, ~20 s; SPEED=0 skips it)
cpu=$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//; s/,/ /g')
step_ms=""
if [ "${SPEED:-1}" != 0 ] && [ -x .venv/bin/python ]; then
    step_ms=$(.venv/bin/python -m bench perf --speed 2>/dev/null | tail -n 1)
    case "$step_ms" in ''|*[!0-9.]*) step_ms="" ;; esac   # a failed timing logs blank, never text
    echo "time_make_all: LoRA step ${step_ms:-(not measured)} ms on this machine"
fi
targets=${TARGETS:-$(awk '/^all:/ {on = 1} on {print; if ($0 !~ /\\$/) exit}' Makefile | sed 's/^all://; s/\\//g')}
for target in $targets; do
    load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "")
    start=$(date -u +%Y-%m-%dT%H:%M:%SZ); t0=$(date +%s.%N)
    make "$target" "$@"
    rc=$?
    t1=$(date +%s.%N); end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    echo "$target,$start,$end,$seconds,$rc,$load,$executor,$cpu,$step_ms" >> "$log"
    echo "time_make_all: $target in $seconds s (exit $rc)"
    [ "$rc" -eq 0 ] || exit "$rc"
done
