#!/usr/bin/env bash
# Compare the validation speed of two gateway builds on the same document, alternating runs so
# that both see the same slow and fast moments of this VM (its speed drifts by tens of percent
# within minutes). Prints each build's median and best MB/s and B's median relative to A's.
#
#   bash bench/validate-pair.sh A_BINARY B_BINARY [ROUNDS] [SIZE_MB]
#
# Needs python3 and GNU time (/usr/bin/time); the document goes to bench/out/ (gitignored).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
A="$1"; B="$2"; ROUNDS="${3:-7}"; SIZE_MB="${4:-100}"
SCHEMA="bench/schema/records.xsd"
DOC="bench/out/records-${SIZE_MB}mb.xml"
mkdir -p bench/out
[ -f "$DOC" ] || python3 bench/gen_records.py "$DOC" "$SIZE_MB"
BYTES=$(stat -c %s "$DOC")

run() { # BIN -> seconds on stdout; fails if the document is refused
    local t0 t1
    t0=$(date +%s%N)
    "$1" validate --schema "$SCHEMA" "$DOC" >/dev/null
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}
summary() { # NAME "SECS..." -> "median_MB/s best_MB/s" and a printed row
    echo "$2" | tr ' ' '\n' | grep . | sort -n | awk -v n="$1" -v by="$BYTES" '
        { t[NR] = $1 }
        END {
            med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "%-3s runs %d  median %.3f s  %.1f MB/s  best %.1f MB/s\n", n, NR, med,
                by / 1048576 / med, by / 1048576 / t[1]
        }'
}
a_s=""; b_s=""
for i in $(seq "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
        a_s="$a_s $(run "$A")"; b_s="$b_s $(run "$B")"
    else
        b_s="$b_s $(run "$B")"; a_s="$a_s $(run "$A")"
    fi
done
echo "document: $DOC ($((BYTES / 1048576)) MB), $ROUNDS rounds, order swapped each round"
ra="$(summary A "$a_s")"; rb="$(summary B "$b_s")"
echo "$ra   ($A)"
echo "$rb   ($B)"
ma=$(echo "$ra" | awk '{ print $7 }'); mb=$(echo "$rb" | awk '{ print $7 }')
awk -v a="$ma" -v b="$mb" 'BEGIN { printf "B/A median throughput: %.3f\n", b / a }'
