#!/usr/bin/env bash
# Compare two gateway builds under load by alternating short runs (this VM's run-to-run spread is
# ±15%, so one run of each says little).
#
#   bash bench/load.sh                          # once: prepares bench/out/load (keys, 20k messages)
#   bash bench/load-ab.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]
#
# Each round runs A then B: a fresh state/ and outbox/ (the previous ones are moved aside and
# deleted at the end, as deleting many files slows file creation on ext4 without a journal),
# `serve`, then wrk -t2 -c${CONNS:-32} for SECONDS (default 8), printing requests/s and p99.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
A="$1"; B="$2"; ROUNDS="${3:-3}"; SECS="${4:-8}"
W="bench/out/load"; CFG="$W/gateway.toml"; CONNS="${CONNS:-32}"
[ -f "$CFG" ] && [ -f "$W/list.txt" ] || { echo "run bench/load.sh first" >&2; exit 2; }
ASIDE="$W.aside.$$"; mkdir -p "$ASIDE"
trap 'rm -rf "$ASIDE"' EXIT
run() {
    local bin="$1" n="$2"
    [ -e "$W/outbox" ] && mv "$W/outbox" "$ASIDE/outbox.$n"
    [ -e "$W/state" ] && mv "$W/state" "$ASIDE/state.$n"
    local token; token="$("$bin" agency token issue police --config "$CFG" 2>/dev/null)"
    "$bin" serve --config "$CFG" > "$W/ab.out" 2> "$W/ab.log" &
    local pid=$!
    for _ in $(seq 100); do grep -q listening "$W/ab.out" 2>/dev/null && break; sleep 0.1; done
    local port; port="$(grep -o '[0-9]*$' "$W/ab.out")"
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/load.lua \
        "https://127.0.0.1:$port/v1/messages" -- "$W/list.txt" 2 "$token" > "$W/ab.wrk"
    kill -TERM "$pid"; wait "$pid" || true
    printf "%-40s %8s req/s  p99 %s ms\n" "$bin" \
        "$(awk '/^Requests\/sec:/ { print $2 }' "$W/ab.wrk")" "$(awk '/^p99_ms/ { print $2 }' "$W/ab.wrk")"
}
for r in $(seq "$ROUNDS"); do
    run "$A" "a$r"; sleep 3
    run "$B" "b$r"; sleep 3
done
