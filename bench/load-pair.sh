#!/usr/bin/env bash
# Compare two gateway builds under load *at the same time*: both serve at once, each driven by
# its own wrk with half the connections, so that both see the same moments of this VM (whose
# speed swings by ±25% from one minute to the next, more than most changes being measured).
# Prints each build's forwarded messages/s (the gateway's own count, as bench/load.sh) and p99,
# and B's throughput relative to A's.
#
#   bash bench/load.sh                          # once: prepares bench/out/load
#   bash bench/load-pair.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]
#   A_SCHEMAS=../old/schemas bash bench/load-pair.sh ...   # a build whose catalog format differs
#
# The two share the machine's two cores and its disk, so each gets about half: compare the
# ratio, not the absolute figures. Rounds swap which server is started first.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
A="$1"; B="$2"; ROUNDS="${3:-3}"; SECS="${4:-10}"
W="${LOAD_DIR:-bench/out/load}"; CONNS="${CONNS:-32}"
[ -f "$W/gateway.toml" ] && [ -f "$W/sealed.pack" ] || { echo "run bench/load.sh first" >&2; exit 2; }
TRASH="$W.trash"
. "$HERE/load-lib.sh"
empty_trash
ROOT="$(pwd)"
config() { # DIR SCHEMAS: a config with its own queue and state, and the shared keys
    mkdir -p "$1"
    cat > "$1/gateway.toml" <<TOML
[paths]
schemas = "$2"
keys = "$ROOT/$W/keys"
outbox = "$1/outbox"
state = "$1/state"
[http]
listen = "127.0.0.1:0"
[inbox]
enabled = false
TOML
}
start() { # BIN DIR -> pid, port in DIR/port
    serve_bin "$1" "$2/gateway.toml" > "$2/serve.out" 2> "$2/serve.log" &
    echo $! > "$2/pid"
    for _ in $(seq 100); do grep -q listening "$2/serve.out" 2>/dev/null && break; sleep 0.1; done
    grep -o '[0-9]*$' "$2/serve.out" > "$2/port"
}
for r in $(seq "$ROUNDS"); do
    trash "$W/pair-a"; config "$ROOT/$W/pair-a" "${A_SCHEMAS:-$ROOT/schemas}"
    trash "$W/pair-b"; config "$ROOT/$W/pair-b" "${B_SCHEMAS:-$ROOT/schemas}"
    token="$("$A" agency token issue police --config "$W/pair-a/gateway.toml" 2>/dev/null)"
    if [ $((r % 2)) = 1 ]; then start "$A" "$W/pair-a"; start "$B" "$W/pair-b"; else start "$B" "$W/pair-b"; start "$A" "$W/pair-a"; fi
    warm_pack
    pids=()
    for side in a b; do
        sample_rate "$(cat "$W/pair-$side/port")" "$SECS" "$W/pair-$side/rate"
        pids+=($!)
        wrk -t1 -c$((CONNS / 2)) -d"${SECS}s" --latency -s bench/load.lua \
            "https://127.0.0.1:$(cat "$W/pair-$side/port")/v1/messages" -- "$W/sealed.pack" 1 "$token" \
            > "$W/pair-$side/wrk.txt" &
        pids+=($!)
    done
    wait "${pids[@]}"
    for side in a b; do kill -TERM "$(cat "$W/pair-$side/pid")"; done
    wait 2>/dev/null || true
    # Each gateway's own count of forwarded messages over the middle of the run (see
    # sample_rate in bench/load-lib.sh).
    ra=$(awk '{ print $1 }' "$W/pair-a/rate"); rb=$(awk '{ print $1 }' "$W/pair-b/rate")
    printf "round %d  A %6.0f msg/s p99 %6s ms   B %6.0f msg/s p99 %6s ms   B/A %.3f\n" "$r" \
        "${ra:-0}" "$(awk '/^p99_ms/ { print $2 }' "$W/pair-a/wrk.txt")" \
        "${rb:-0}" "$(awk '/^p99_ms/ { print $2 }' "$W/pair-b/wrk.txt")" \
        "$(awk -v a="${ra:-0}" -v b="${rb:-0}" 'BEGIN { if (a > 0) print b / a; else print 0 }')"
done
