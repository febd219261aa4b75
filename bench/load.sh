#!/usr/bin/env bash
# HTTPS load benchmark: small (~10 KB) sealed messages, each one different, POSTed with
# keep-alive by wrk; every 201 means the message was fsynced into the outbox queue.
#
#   bench/load.sh                       # 20,000 messages prepared, 32 connections, 20 s
#   N=5000 CONNS=32 DURATION=10 bench/load.sh
#   MAX_IN_FLIGHT=64 bench/load.sh      # [http] max_in_flight for the run (default: the gateway's)
#   LOAD_DIR=/bench-1 bench/load.sh     # work (keys, messages, state, outbox) in another directory
#   SERVE_WRAPPER=eatmydata bench/load.sh   # experiments only: run `serve` under a wrapper
#                                       # (eatmydata shows the ceiling without fsync costs)
#
# Prints requests/s and accepted (201) messages/s as wrk counts them, the gateway's own count of
# forwarded messages per second between 3 s after the start and 1 s before the end (from its
# /metrics: the figure to quote), p50/p99 latency and the gateway's peak RSS.
# Needs: cargo, python3, wrk (Debian: apt-get install wrk). Files go to bench/out/load/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
N="${N:-20000}"; CONNS="${CONNS:-32}"; DURATION="${DURATION:-20}"; THREADS="${THREADS:-2}"
W="${LOAD_DIR:-bench/out/load}"
GW="$ROOT/target/release/gateway"
command -v wrk >/dev/null || { echo "error: wrk not found (apt-get install wrk)" >&2; exit 2; }

echo "== build (cargo build --release)"
cargo build --release --quiet

# The previous run's files go to the trash, deleted at the start of the next benchmark (see
# bench/load-lib.sh).
TRASH="$W.trash"
. "$HERE/load-lib.sh"
empty_trash
trash "$W"
mkdir -p "$W/xml" "$W/sealed"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/gateway.toml" <<TOML
[paths]
schemas = "$ROOT/schemas"
[http]
listen = "127.0.0.1:$PORT"
${MAX_IN_FLIGHT:+max_in_flight = $MAX_IN_FLIGHT}
[inbox]
enabled = false
TOML
CFG="$W/gateway.toml"
"$GW" keys init --config "$CFG" >/dev/null
TOKEN="$("$GW" agency token issue police --config "$CFG" 2>/dev/null)"

prepare_pack

echo "== serve"
${SERVE_WRAPPER:-} env GATEWAY_METRICS__LISTEN=127.0.0.1:0 "$GW" serve --config "$CFG" > "$W/serve.out" 2> "$W/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "git rev: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

echo "== wrk -t$THREADS -c$CONNS -d${DURATION}s (HTTP/1.1 keep-alive, TLS)"
warm_pack
sample_rate "$PORT" "$DURATION" "$W/window.txt"
SAMPLER=$!
T0=$(date +%s%N)
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s bench/load.lua \
    "https://127.0.0.1:$PORT/v1/messages" -- "$W/sealed.pack" "$THREADS" "$TOKEN" | tee "$W/wrk.txt"
T1=$(date +%s%N)
wait "$SAMPLER"

RSS_KB=$(awk '/VmHWM/ { print $2 }' /proc/$PID/status)
kill -TERM $PID; wait $PID || true
QUEUED=$(find "$W/outbox/integration/new" -name '*.json' | wc -l)
ACCEPTED=$(awk '/^status 201:/ { print $3 }' "$W/wrk.txt")
RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$W/wrk.txt")
P50=$(awk '/^p50_ms/ { print $2 }' "$W/wrk.txt"); P99=$(awk '/^p99_ms/ { print $2 }' "$W/wrk.txt")
echo "== results"
printf "%-28s %s\n" "requests/s" "$RPS"
printf "%-28s %s\n" "accepted (201) messages/s" "$(awk -v a="${ACCEPTED:-0}" -v d="$DURATION" 'BEGIN { printf "%.0f", a / d }')"
printf "%-28s %s\n" "queued messages (new/*.json)" "$QUEUED"
# Two figures that do not rely on wrk's clock: the gateway's count over the sampled window, and
# a lower bound, everything queued over wrk's whole life (start-up and connections included).
printf "%-28s %s\n" "forwarded/s (gateway count)" "$(awk '{ printf "%d (%d messages in %.1f s)", $1, $2, $3 }' "$W/window.txt")"
printf "%-28s %s\n" "queued / wrk's wall time" "$(awk -v q="$QUEUED" -v a="$T0" -v b="$T1" 'BEGIN { printf "%.0f /s over %.2f s", q / ((b - a) / 1e9), (b - a) / 1e9 }')"
printf "%-28s %s ms / %s ms\n" "latency p50 / p99" "$P50" "$P99"
printf "%-28s %.1f MB\n" "gateway peak RSS" "$(awk -v k="$RSS_KB" 'BEGIN { print k / 1024 }')"
