#!/usr/bin/env bash
# Whole-pipeline benchmark: open (age) + verify (CMS) + validate (XSD) a large sealed payload.
#
#   bench/pipeline.sh                 # ~500 MB document
#   SIZE_MB=50 bench/pipeline.sh      # other size
#
# Prints, side by side in one run, wall time and peak RSS of:
#   gateway check          our one-pass pipeline (dry run: nothing forwarded)
#   gateway check --forward  the same, plus writing the XML to the outbox queue with fsync
#   stock                  age -d | openssl cms -verify | xmllint --stream --schema
# The payload is sealed with public tools only (openssl cms -sign -stream, age).
# Needs: cargo, python3, age, openssl, xmllint (libxml2-utils), GNU time at /usr/bin/time.
# Output files go to bench/out/pipeline/ (gitignored) and are removed at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

SIZE_MB="${SIZE_MB:-500}"
W="bench/out/pipeline"
GW="$ROOT/target/release/gateway"

for t in age openssl xmllint python3; do
    command -v "$t" >/dev/null || { echo "error: $t not found (apt-get install age openssl libxml2-utils python3)" >&2; exit 2; }
done
/usr/bin/time -v true >/dev/null 2>&1 || { echo "error: GNU time missing (apt-get install time)" >&2; exit 2; }

echo "== build (cargo build --release)"
cargo build --release --quiet

rm -rf "$W"
mkdir -p "$W/schemas"
trap 'rm -f "$W"/*.xml "$W"/*.sealed; rm -rf "$W/outbox"' EXIT
cp bench/schema/records.xsd "$W/schemas/"
cat > "$W/schemas/catalog.toml" <<'TOML'
[[schema]]
id = "bench-records-1"
root = "{urn:example:records}Records"
version = "1"
entry = "records.xsd"
agencies = ["bench"]
TOML
cat > "$W/gateway.toml" <<'TOML'
[limits]
max_payload_bytes = 17179869184
TOML
CFG="$W/gateway.toml"

echo "== keys: gateway identity (gateway keys init), agency signing key (openssl)"
"$GW" keys init --config "$CFG" >/dev/null
"$GW" agency add bench --config "$CFG" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench agency" \
    -days 30 -keyout "$W/agency.key" -out "$W/agency.crt" 2>/dev/null
"$GW" agency cert add bench "$W/agency.crt" --config "$CFG" >/dev/null
RECIPIENT="$("$GW" recipient --config "$CFG")"
IDENTITY="$(ls "$W"/keys/identities/*.key | head -n 1)"

echo "== generate ${SIZE_MB} MB document and seal it (openssl cms -sign -stream | age)"
DOC="$W/records.xml"
python3 bench/gen_records.py "$DOC" "$SIZE_MB"
SEALED="$W/records.sealed"
openssl cms -sign -binary -nodetach -stream -outform DER -md sha256 \
    -in "$DOC" -signer "$W/agency.crt" -inkey "$W/agency.key" | age -r "$RECIPIENT" > "$SEALED"
ls -l "$DOC" "$SEALED"

# measure CMD... : sets M_RC, M_SECS, M_RSS_KB (peak RSS of the largest process, children included).
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
    [ "$M_RC" = 0 ] || echo "   (exit $M_RC) $(head -c 400 "$tf.err")" >&2
    rm -f "$tf" "$tf.err"
}

ROWS=()
best_of_two() {
    local label="$1"; shift
    local best_s="" best_rss="" i bytes
    bytes=$(stat -c %s "$SEALED")
    for i in 1 2; do
        rm -rf "$W/outbox" "$W/state"
        measure "$@"
        if [ "$M_RC" != 0 ]; then echo "FAIL: $label exited $M_RC" >&2; exit 1; fi
        if [ -z "$best_s" ] || awk -v a="$M_SECS" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then
            best_s="$M_SECS"; best_rss="$M_RSS_KB"
        fi
    done
    ROWS+=("$(awk -v e="$label" -v s="$best_s" -v by="$bytes" -v r="$best_rss" \
        'BEGIN { printf "%-26s %9.1f %9.3f %9.1f %11.1f", e, by / 1048576, s, by / 1048576 / s, r / 1024 }')")
}

echo "== machine"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)   nproc: $(nproc)   cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "tools:   $(age --version) / $(openssl version | cut -d' ' -f1-2) / $(xmllint --version 2>&1 | head -n 1)"
echo "git rev: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

echo "== run (best of two each)"
best_of_two "gateway check" "$GW" check --config "$CFG" --agency bench "$SEALED"
best_of_two "gateway check --forward" "$GW" check --config "$CFG" --agency bench --forward "$SEALED"
best_of_two "stock age|openssl|xmllint" bash -o pipefail -c \
    "age -d -i '$IDENTITY' '$SEALED' | openssl cms -verify -binary -inform DER -CAfile '$W/agency.crt' -purpose any | xmllint --noout --stream --schema '$W/schemas/records.xsd' -"

echo "== results (MB = sealed payload size)"
printf "%-26s %9s %9s %9s %11s\n" pipeline MB seconds "MB/s" "peakRSS_MB"
for row in "${ROWS[@]}"; do echo "$row"; done
