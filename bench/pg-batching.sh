#!/usr/bin/env bash
# What batching saves PostgreSQL (the reason for the ledger's group commit,
# gateway/store/postgres/writes.rs): pgbench registers and closes messages in the ledger's own
# schema, one message per statement (bench/pgbench/one.sql) and four per statement
# (four.sql), and prints PostgreSQL's CPU time per message for each (its backends' utime +
# stime, exited ones included, over the messages).
#
#   bash bench/pg-batching.sh                 # 8 clients, 8 s each
#   CLIENTS=16 SECONDS_EACH=15 bash bench/pg-batching.sh
# Needs: root (scripts/cluster-servers), cargo, pgbench (postgresql's package).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLIENTS="${CLIENTS:-8}"; SECONDS_EACH="${SECONDS_EACH:-8}"
PG_BIN=/usr/lib/postgresql/15/bin
cargo build --release --quiet
bash scripts/cluster-servers install
DIR="$(mktemp -d /tmp/gateway-pgbench.XXXXXX)"; chmod 755 "$DIR"
HOME_DIR="$(mktemp -d)"
trap 'bash scripts/cluster-servers stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR" "$HOME_DIR"' EXIT
bash scripts/cluster-servers start "$DIR" >/dev/null
# shellcheck disable=SC1091
. "$DIR/env"
# The ledger's schema, as the gateway migrates it (check-config opens the ledger).
printf '[paths]\nschemas = "%s/schemas"\nstate = "%s/state"\n[ledger]\nbackend = "postgres"\n' \
    "$ROOT" "$HOME_DIR" > "$HOME_DIR/gateway.toml"
target/release/gateway check-config --config "$HOME_DIR/gateway.toml" >/dev/null 2>&1 || true
"$PG_BIN/psql" -X -q "$GATEWAY_LEDGER_URL" -c "SELECT 1 FROM messages LIMIT 1" >/dev/null

pg_ticks() { # CPU ticks of every postgres process, and of the backends that exited
    for p in $(pgrep -x postgres); do cat "/proc/$p/stat" 2>/dev/null || true; done |
        awk '{ t += $14 + $15 + $16 + $17 } END { print t + 0 }'
}
HZ=$(getconf CLK_TCK)
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  git: $(git rev-parse --short HEAD)"
for script in one four; do
    per=1; [ "$script" = four ] && per=4
    t0=$(pg_ticks)
    tx=$("$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_EACH" \
        -f "bench/pgbench/$script.sql" "$GATEWAY_LEDGER_URL" 2>/dev/null |
        awk '/number of transactions actually processed/ { print $NF }' | cut -d/ -f1)
    t1=$(pg_ticks)
    awk -v s="$script" -v n="$((tx * per))" -v t="$((t1 - t0))" -v hz="$HZ" -v secs="$SECONDS_EACH" \
        'BEGIN { printf "%-5s message(s) per statement: %7d messages, %6.0f/s, PostgreSQL CPU %5.0f us per message\n",
                 s, n, n / secs, n ? t * 1e6 / hz / n : 0 }'
done
