#!/usr/bin/env bash
# Validation throughput / memory benchmark: our engine (gateway validate) vs xmllint --stream.
#
#   bench/validate.sh                 # 100 MB document
#   SIZE_MB=20 bench/validate.sh      # other size
#   BIG=1 bench/validate.sh           # also a ~1 GB document (deleted afterwards)
#   ROUNDS=9 bench/validate.sh        # runs per engine (default 5), alternating
#
# Prints, per engine, the median and the best of its runs: this VM's speed drifts by
# tens of percent within minutes, so a single run says little.
#
# Needs: cargo, python3, xmllint (Debian: apt-get install libxml2-utils),
#        GNU time at /usr/bin/time (Debian: apt-get install time).
# Output files go to bench/out/ (gitignored).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

SIZE_MB="${SIZE_MB:-100}"
BIG="${BIG:-0}"
BIG_MB="${BIG_MB:-1024}"
ROUNDS="${ROUNDS:-5}"
SCHEMA="bench/schema/records.xsd"
OUT="bench/out"
GW="target/release/gateway"

missing=0
if ! command -v xmllint >/dev/null 2>&1; then
    echo "error: xmllint not found; install it with: apt-get update && apt-get install -y libxml2-utils" >&2
    missing=1
fi
if [ ! -x /usr/bin/time ] || ! /usr/bin/time -v true >/dev/null 2>&1; then
    echo "error: GNU time (/usr/bin/time -v) not found; install it with: apt-get install -y time" >&2
    missing=1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 not found; install it with: apt-get install -y python3" >&2
    missing=1
fi
[ "$missing" = 0 ] || exit 2

mkdir -p "$OUT"

echo "== build (cargo build --release)"
cargo build --release --quiet

# measure CMD... : runs CMD under /usr/bin/time -v; sets M_RC, M_SECS, M_RSS_KB.
measure() {
    local tf; tf="$(mktemp)"
    local t0 t1
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -v -o "$tf" "$@" >/dev/null 2>"$tf.err"
    M_RC=$?
    set -e
    t1=$(date +%s%N)
    M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    M_RSS_KB=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$tf")
    if [ "$M_RC" != 0 ]; then
        echo "   (exit $M_RC) $(head -c 400 "$tf.err")" >&2
    fi
    rm -f "$tf" "$tf.err"
}

# A row per engine: the median and best of its runs (seconds, MB/s) and its peak RSS.
ROWS=()
add_row() { # ENGINE FILE "SECS..." MAX_RSS_KB
    local engine="$1" file="$2" secs="$3" rss="$4" bytes
    bytes=$(stat -c %s "$file")
    ROWS+=("$(echo "$secs" | tr ' ' '\n' | sort -n | awk -v e="$engine" -v f="$(basename "$file")" \
        -v by="$bytes" -v r="$rss" '
        { t[NR] = $1 }
        END {
            med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "%-10s %-22s %7.1f %4d %9.3f %9.1f %9.1f %10.1f", e, f, by / 1048576, NR, med,
                by / 1048576 / med, by / 1048576 / t[1], r / 1024
        }')")
}

# alternate FILE ROUNDS : runs gateway and xmllint in turn ROUNDS times each (so that both
# see the same slow and fast moments of a shared machine); fails if either rejects FILE.
alternate() {
    local file="$1" rounds="$2" i gw_s="" xl_s="" gw_rss=0 xl_rss=0
    for i in $(seq "$rounds"); do
        measure "$GW" validate --schema "$SCHEMA" "$file"
        [ "$M_RC" = 0 ] || { echo "FAIL: gateway exited $M_RC on valid file $file" >&2; exit 1; }
        gw_s="$gw_s $M_SECS"; [ "$M_RSS_KB" -gt "$gw_rss" ] && gw_rss="$M_RSS_KB"
        measure xmllint --noout --stream --schema "$SCHEMA" "$file"
        [ "$M_RC" = 0 ] || { echo "FAIL: xmllint exited $M_RC on valid file $file" >&2; exit 1; }
        xl_s="$xl_s $M_SECS"; [ "$M_RSS_KB" -gt "$xl_rss" ] && xl_rss="$M_RSS_KB"
    done
    add_row gateway "$file" "${gw_s# }" "$gw_rss"
    add_row xmllint "$file" "${xl_s# }" "$xl_rss"
}

print_table() {
    printf "%-10s %-22s %7s %4s %9s %9s %9s %10s\n" engine file MB runs "median_s" \
        "MB/s" "best_MB/s" "peakRSS_MB"
    local row
    for row in "${ROWS[@]}"; do echo "$row"; done
}

echo "== machine"
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:    $(nproc)"
echo "cpu:      $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "mem:      $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "xmllint:  $(xmllint --version 2>&1 | head -n 1)"
echo "git rev:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (dirty tree)')"
echo "rustc:    $(rustc --version)"

echo "== sanity: invalid document (one bad xs:date near the end) must be rejected"
BAD="$OUT/records-bad-1mb.xml"
python3 bench/gen_records.py "$BAD" 1 --bad-date
set +e
"$GW" validate --schema "$SCHEMA" "$BAD" >/dev/null 2>&1; gw_rc=$?
xmllint --noout --stream --schema "$SCHEMA" "$BAD" >/dev/null 2>&1; xl_rc=$?
set -e
if [ "$gw_rc" != 0 ] && [ "$xl_rc" != 0 ]; then
    echo "sanity: OK (gateway exit $gw_rc, xmllint exit $xl_rc on the invalid file)"
else
    echo "sanity: FAILED (gateway exit $gw_rc, xmllint exit $xl_rc; both must be non-zero)" >&2
    exit 1
fi

echo "== generate ${SIZE_MB} MB document"
DOC="$OUT/records-${SIZE_MB}mb.xml"
python3 bench/gen_records.py "$DOC" "$SIZE_MB"
ls -l "$DOC"

echo "== validate ($ROUNDS rounds, gateway and xmllint alternating)"
alternate "$DOC" "$ROUNDS"

# Issue 12: the same document in UTF-16 (LE, with a byte order mark), transcoded as it streams.
DOC16="$OUT/records-${SIZE_MB}mb-utf16.xml"
python3 - "$DOC" "$DOC16" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
open(sys.argv[2], "w", encoding="utf-16").write(text)
PY
echo "== validate UTF-16 ($ROUNDS rounds, gateway and xmllint alternating)"
alternate "$DOC16" "$ROUNDS"
rm -f "$DOC16"

if [ "$BIG" = 1 ]; then
    BIGDOC="$OUT/records-${BIG_MB}mb.xml"
    trap 'rm -f "$BIGDOC"' EXIT
    echo "== generate ${BIG_MB} MB document"
    python3 bench/gen_records.py "$BIGDOC" "$BIG_MB"
    ls -l "$BIGDOC"
    echo "== validate big document (both engines, 2 rounds)"
    alternate "$BIGDOC" 2
    rm -f "$BIGDOC"
fi

echo "== results"
print_table
