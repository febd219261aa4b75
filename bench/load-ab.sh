#!/usr/bin/env bash
# Compare two gateway builds under load by alternating short runs (this VM's run-to-run spread is
# ±15%, so one run of each says little).
#
#   bash bench/load.sh                          # once: prepares bench/out/load (keys, 20k messages)
#   bash bench/load-ab.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]
#   LOAD_DIR=/mnt/other/load bash bench/load-ab.sh ...   # a copy of bench/out/load elsewhere
#                                                         # (another filesystem)
#
# Each round runs A and B (in alternating order): a fresh state/ and outbox/ (the previous ones go to
# the trash, deleted only at the start of the next benchmark: see bench/load-lib.sh),
# `serve`, then wrk -t2 -c${CONNS:-32} for SECONDS (default 8), printing the gateway's forwarded
# messages per second (its /metrics, 3 s after the start to 1 s before the end), wrk's
# requests/s, p99, and CPU time per accepted message (the gateway's, and the whole machine's).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
A="$1"; B="$2"; ROUNDS="${3:-3}"; SECS="${4:-8}"
W="${LOAD_DIR:-bench/out/load}"; CFG="$W/gateway.toml"; CONNS="${CONNS:-32}"
[ -f "$CFG" ] && [ -f "$W/sealed.pack" ] || { echo "run bench/load.sh first" >&2; exit 2; }
TRASH="$W.trash"
. "$HERE/load-lib.sh"
empty_trash
run() {
    local bin="$1" out="$W/ab.$2.wrk"
    trash "$W/outbox"
    trash "$W/state"
    local token; token="$("$bin" agency token issue police --config "$CFG" 2>/dev/null)"
    serve_bin "$bin" "$CFG" > "$W/ab.out" 2> "$W/ab.log" &
    local pid=$!
    for _ in $(seq 100); do grep -q listening "$W/ab.out" 2>/dev/null && break; sleep 0.1; done
    local port; port="$(grep -o '[0-9]*$' "$W/ab.out")"
    warm_pack
    local cpu0 busy0 io0; cpu0="$(proc_cpu "$pid")"; busy0="$(busy_jiffies)"; io0="$(proc_wchar "$pid")"
    sample_rate "$port" "$SECS" "$out.rate"
    local sampler=$!
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/load.lua \
        "https://127.0.0.1:$port/v1/messages" -- "$W/sealed.pack" 2 "$token" > "$out"
    wait "$sampler"
    local cpu1 busy1 io1; cpu1="$(proc_cpu "$pid")"; busy1="$(busy_jiffies)"; io1="$(proc_wchar "$pid")"
    kill -TERM "$pid"; wait "$pid" || true
    local n; n="$(awk '/^status 201:/ { print $3 }' "$out")"
    # CPU per accepted message: the gateway's own (user+system), and the whole machine's
    # (wrk and kernel threads included). Less sensitive to the VM's speed swings than req/s.
    printf "%-28s %6s msg/s (wrk %7s req/s)  p99 %6s ms  gateway %5s us/msg  machine %5s us/msg  written %4s KB/msg\n" "$bin" \
        "$(awk '{ print $1 }' "$out.rate")" \
        "$(awk '/^Requests\/sec:/ { print $2 }' "$out")" "$(awk '/^p99_ms/ { print $2 }' "$out")" \
        "$(awk -v a="$cpu0" -v b="$cpu1" -v n="${n:-0}" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e6 / n; else print "-" }')" \
        "$(awk -v a="$busy0" -v b="$busy1" -v n="${n:-0}" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e6 / n; else print "-" }')" \
        "$(awk -v a="$io0" -v b="$io1" -v n="${n:-0}" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / 1024 / n; else print "-" }')"
}
HZ="$(getconf CLK_TCK)"
# utime + stime of a process, in clock ticks.
proc_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Bytes the process passed to write(2)/pwrite(2).
proc_wchar() { awk '/^wchar:/ { print $2 }' "/proc/$1/io"; }
# Busy clock ticks of all CPUs (everything but idle and iowait).
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# A B, B A, A B...: whichever runs second in a pair has an advantage on this VM (the first
# one's files are still being written back), so the order alternates.
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        run "$A" "a$r"; sleep 3; run "$B" "b$r"; sleep 3
    else
        run "$B" "b$r"; sleep 3; run "$A" "a$r"; sleep 3
    fi
done
