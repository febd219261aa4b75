#!/usr/bin/env bash
# One gateway against three, in one run on this machine: messages/s, p99 and CPU time per
# message of
#   A. one instance on the embedded defaults (SQLite ledger + outbox folder), and
#   B. three instances on PostgreSQL + RabbitMQ behind HAProxy (scripts/cluster-servers),
# each driven by wrk with the same distinct ~10 KB sealed messages (bench/load.sh's). Every 201
# means the message is durably queued (fsynced folder, or a quorum-queue confirm). A and B take
# turns ROUNDS times, each on empty ledgers and an empty queue, with a wait for a quiet machine
# between them; the ratios printed are the medians of the rounds' ratios.
#
#   bash bench/cluster.sh                     # 12,000 messages, 32 connections, 15 s each,
#                                             # A then B, 3 rounds; ratios are medians
#   N=20000 CONNS=32 DURATION=20 ROUNDS=5 bash bench/cluster.sh
#
# CPU per message: the gateways' own CPU time (utime + stime from /proc) over the run divided
# by the messages they forwarded; and the whole machine's busy time (/proc/stat, everything:
# wrk, HAProxy, PostgreSQL, RabbitMQ too) per message, and the share of HAProxy, PostgreSQL and
# RabbitMQ (beam.smp) in it; and PostgreSQL's WAL flushes and commits per message (what its
# commit_delay, set by scripts/cluster-servers, shares: PG_EXTRA_OPTS="-c commit_delay=0" to
# compare). Target (issue 14): the cluster path costs
# at most 1.5x the CPU per message of the embedded path; both ratios are printed (the
# gateways' own, and the whole machine's, servers included).
# Needs: root (the servers), cargo, python3, wrk. Files go to bench/out/cluster/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
N="${N:-12000}"; CONNS="${CONNS:-32}"; DURATION="${DURATION:-15}"; THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
W="bench/out/cluster"
PSQL=/usr/lib/postgresql/15/bin/psql # scripts/cluster-servers' PostgreSQL 15
GW="$ROOT/target/release/gateway"
command -v wrk >/dev/null || { echo "error: wrk not found (apt-get install wrk)" >&2; exit 2; }

echo "== build (cargo build --release)"
cargo build --release --quiet
TRASH="$W.trash"
. "$HERE/load-lib.sh"
empty_trash
trash "$W"
mkdir -p "$W/xml" "$W/sealed"
CFG="$W/gateway.toml"
cat > "$CFG" <<TOML
[paths]
schemas = "$ROOT/schemas"
TOML
"$GW" keys init --config "$CFG" >/dev/null
TOKEN="$("$GW" agency token issue police --config "$CFG" 2>/dev/null)"
prepare_pack

bash scripts/cluster-servers install
SERVERS="$(mktemp -d /tmp/gateway-bench.XXXXXX)"
chmod 755 "$SERVERS"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    bash scripts/cluster-servers stop "$SERVERS" >/dev/null 2>&1 || true
    rm -rf "$SERVERS"
}
trap cleanup EXIT
bash scripts/cluster-servers start "$SERVERS"
# shellcheck disable=SC1091
. "$SERVERS/env"

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "git rev: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# instance config: NAME TLS_PORT METRICS_PORT EXTRA
instance() {
    mkdir -p "$W/$1"
    cat > "$W/$1/gateway.toml" <<TOML
[paths]
schemas = "$ROOT/schemas"
keys = "$ROOT/$W/keys"
outbox = "$ROOT/$W/$1/outbox"
state = "$ROOT/$W/$1/state"
[http]
listen = "127.0.0.1:$2"
proxy_protocol_from = ["127.0.0.2"]
[metrics]
listen = "127.0.0.1:$3"
[inbox]
enabled = false
$4
TOML
}
start() { # NAME -> appends the pid to PIDS
    "$GW" serve --config "$W/$1/gateway.toml" > "$W/$1/serve.out" 2> "$W/$1/serve.log" &
    PIDS+=($!)
}
ready() { # METRICS_PORT
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "instance on metrics port $1 is not ready" >&2; exit 1
}
cpu_ticks() { # PID...: utime + stime, in clock ticks
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
    echo "$t"
}
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
all_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; } # idle too
comm_ticks() { # COMMAND NAME (as in /proc/PID/comm): "pid ticks" of every such process alive now
    # cat fails when a process exits between the glob and the read; the others still count.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v want="($1)" '$2 == want { print $1, $14 + $15 }'
}
# CPU ticks used between two comm_ticks snapshots: a process in both counts its difference, a
# process started in between counts whole, and one that exited in between (a reloaded HAProxy's
# old process) counts nothing more.
ticks_between() { # BEFORE AFTER
    awk 'NR == FNR { was[$1] = $2; next } { t += $2 - ($1 in was ? was[$1] : 0) } END { print t + 0 }' \
        <(echo "$1") <(echo "$2")
}
# Waits (at most 30 s) until the machine is quiet: under 10% busy over a second. Run between the
# phases, so that one phase's leftovers (deleted files, a checkpoint, the queue's purge) are not
# charged to the next one.
quiet() {
    local b0 t0 b1 t1
    sync
    for _ in $(seq 30); do
        b0=$(busy_ticks); t0=$(all_ticks)
        sleep 1
        b1=$(busy_ticks); t1=$(all_ticks)
        [ $(( (b1 - b0) * 10 )) -lt $(( t1 - t0 )) ] && return 0
    done
}
PARTS="haproxy postgres beam.smp"
forwarded_at() { # METRICS_PORT...
    local n=0 p
    for p in "$@"; do
        n=$((n + $(curl -s "http://127.0.0.1:$p/metrics" |
            awk '/^gateway_messages_total\{/ && /outcome="forwarded"/ { n += $NF } END { print n + 0 }')))
    done
    echo "$n"
}
HZ=$(getconf CLK_TCK)
# PostgreSQL's WAL flushes and commits so far ("0 0" in A, where it is idle). Backends report
# them within a second, so a run's figures are exact to about a second's worth.
pg_counters() {
    "$PSQL" -X -At -F ' ' "$GATEWAY_LEDGER_URL" -c \
        "SELECT (SELECT wal_sync FROM pg_stat_wal),
                (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"
}

# run LABEL URL METRICS_PORTS... : wrk against URL, figures from the gateways in PIDS
run() {
    local label="$1" url="$2"; shift 2
    warm_pack
    local c0 b0 f0 c1 b1 f1
    declare -A p0
    for n in $PARTS; do p0[$n]=$(comm_ticks "$n"); done
    local g0 g1
    c0=$(cpu_ticks "${PIDS[@]}"); b0=$(busy_ticks); f0=$(forwarded_at "$@"); g0=$(pg_counters)
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s bench/load.lua \
        "$url" -- "$W/sealed.pack" "$THREADS" "$TOKEN" > "$W/wrk-$label.txt"
    c1=$(cpu_ticks "${PIDS[@]}"); b1=$(busy_ticks); f1=$(forwarded_at "$@"); g1=$(pg_counters)
    local msgs=$((f1 - f0)) parts=""
    for n in $PARTS; do
        parts="$parts $n $(awk -v t="$(ticks_between "${p0[$n]}" "$(comm_ticks "$n")")" -v m="$msgs" -v hz="$HZ" \
            'BEGIN { printf "%.2f", m ? t * 1000 / hz / m : 0 }')"
    done
    parts="$parts; PostgreSQL per message: $(awk -v m="$msgs" -v a="$g0" -v b="$g1" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "%.2f WAL flushes, %.2f commits", m ? (y[1] - x[1]) / m : 0, m ? (y[2] - x[2]) / m : 0 }')"
    echo "   CPU ms/msg of the other parts:$parts" >> "$W/parts.txt"
    awk -v l="$label" -v m="$msgs" -v d="$DURATION" -v c=$((c1 - c0)) -v b=$((b1 - b0)) -v hz="$HZ" \
        -v p99="$(awk '/^p99_ms/ { print $2 }' "$W/wrk-$label.txt")" \
        -v e="$(awk '/^status/ && $2 != "201:" { n += $3 } END { print n + 0 }' "$W/wrk-$label.txt")" \
        'BEGIN { printf "%-34s %7.0f msg/s  p99 %6s ms  gateway CPU %5.2f ms/msg  machine %5.2f ms/msg  (%d forwarded, %d not 201)\n",
                 l, m / d, p99, (m ? c * 1000 / hz / m : 0), (m ? b * 1000 / hz / m : 0), m, e }' \
        | tee -a "$W/results.txt"
}

CLUSTER_TOML='[ledger]
backend = "postgres"
[queue]
backend = "rabbitmq"
claim_check_dir = "'"$ROOT/$W"'/claims"'
for i in 1 2 3; do instance "b$i" "2151$i" "2152$i" "$CLUSTER_TOML"; done
LEDGER_BASE="$GATEWAY_LEDGER_URL"
stop_all() { kill -TERM "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null || true; PIDS=(); }

# A and B take turns, ROUNDS times: this VM's speed drifts by 10-20% over minutes, and turns
# expose both to the same drift. Each round starts on empty ledgers and an empty queue, so that
# every message is new to it (the pack is the same each round): A in a new folder, B on a new
# database.
quiet
for round in $(seq "$ROUNDS"); do
    echo "== round $round of $ROUNDS: A, one instance, SQLite + outbox folder"
    # A new folder each round: deleting the last round's files would slow this round's file
    # creation (recently freed inodes), as bench/load-lib.sh's trash explains.
    instance "a$round" 21501 21502 ""
    start "a$round"; ready 21502
    run "A one instance (SQLite + folder)" "https://127.0.0.1:21501/v1/messages" 21502
    stop_all
    quiet

    echo "== round $round of $ROUNDS: B, three instances, PostgreSQL + RabbitMQ, behind HAProxy"
    "$PSQL" -X -q "$LEDGER_BASE" -c "CREATE DATABASE gateway_r$round"
    export GATEWAY_LEDGER_URL="${LEDGER_BASE%/*}/gateway_r$round"
    for i in 1 2 3; do start "b$i"; done
    for i in 1 2 3; do ready "2152$i"; done
    bash scripts/cluster-servers haproxy "$SERVERS" 21500 21521:21511 21522:21512 21523:21513 >/dev/null
    sleep 1
    run "B three instances (PG + RabbitMQ)" "https://127.0.0.1:21500/v1/messages" 21521 21522 21523
    stop_all
    bash scripts/cluster-servers rabbit-cli "$SERVERS" rabbitmqctl purge_queue integration >/dev/null
    "$PSQL" -X -q "$GATEWAY_LEDGER_URL" -c CHECKPOINT
    quiet
done

echo "== results"
cat "$W/results.txt"
echo "-- CPU of the servers per message (A, then B, each round):"
cat "$W/parts.txt"
# Lines alternate A, B; a round's ratios are its B over its A.
awk 'function field(line, name,   v) { v = line; sub(".*" name " +", "", v); return v + 0 }
     function median(x, n,   i, j, t) {
         for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
         return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
     NR % 2 == 1 { a = field($0, "gateway CPU"); am = field($0, "machine") }
     NR % 2 == 0 && a > 0 && am > 0 { n++; g[n] = field($0, "gateway CPU") / a; w[n] = field($0, "machine") / am
         printf "round %d: gateway CPU ratio %.2fx, whole machine %.2fx\n", n, g[n], w[n] }
     END { if (n) { printf "gateway CPU per message, cluster / embedded: %.2fx median of %d round(s) (target <= 1.5x)\n", median(g, n), n
                    printf "whole machine CPU per message, cluster / embedded: %.2fx median of %d round(s) (target <= 1.5x)\n", median(w, n), n } }' "$W/results.txt"
