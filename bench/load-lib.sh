# Sourced by the load benchmarks.
#
# Old runs' files are moved into a trash directory beside the work directory (a rename) and
# deleted only at the start of the next benchmark, which then waits until the kernel no longer
# treats those inodes as recently freed. ext4 without a journal (as on the reference VM) skips
# inodes freed in the last `vm.dirty_expire_centisecs` (30 s) when it allocates new ones,
# rescanning them for every file created: after deleting tens of thousands of files, creating
# the two queue files per message took 20-25% of the gateway's CPU (perf, see
# docs/benchmarks.md), which would be measured as the gateway's cost.
#
#   trash PATH      move PATH into the trash ($TRASH)
#   empty_trash     delete the trash, then wait out the recently-freed window if anything was deleted
#   warm_pack       read $W/sealed.pack (the messages wrk sends) into the page cache
#   sample_rate PORT SECS OUT   in the background: the gateway's forwarded messages per second
#                   from 3 s after now to 1 s before SECS have passed, written to OUT
TRASH="${TRASH:?set TRASH before sourcing bench/load-lib.sh}"
trash() {
    [ -e "$1" ] || return 0
    mkdir -p "$TRASH"
    mv "$1" "$TRASH/$(basename "$1").$(date +%s%N)"
}
empty_trash() {
    [ -d "$TRASH" ] || return 0
    rm -rf "$TRASH"
    # Twice the window: 36 s after deleting 60,000 files, the scan still showed in 10% of the
    # server's samples; after 65 s it was gone.
    local wait=$(( $(cat /proc/sys/vm/dirty_expire_centisecs 2>/dev/null || echo 3000) / 50 ))
    echo "== deleted the previous runs' files; waiting ${wait} s (recently freed inodes slow file creation)"
    sleep "$wait"
}

# The host pages out page cache unused for about a minute (DAMON `pageout` on this VM), and the
# benchmarks wait that long after deleting files: without this read, wrk's second thread read its
# messages from disk while the first already ran (see bench/load.lua).
warm_pack() {
    cat "$W/sealed.pack" "$W/sealed.pack.sizes" > /dev/null
}

# /metrics on the HTTPS port needs this token (builds before issue 11 ignore it), and the
# metrics listener of each gateway takes an ephemeral port so that two can run at once.
export GATEWAY_METRICS_TOKEN="${GATEWAY_METRICS_TOKEN:-bench-metrics-token}"
# BIN CONFIG: runs BIN serve with the metrics listener on an ephemeral port when BIN knows it.
# Started with `&`, it `exec`s, so that $! is the gateway's pid.
serve_bin() {
    if GATEWAY_METRICS__LISTEN=127.0.0.1:0 "$1" check-config --config "$2" >/dev/null 2>&1; then
        GATEWAY_METRICS__LISTEN=127.0.0.1:0 exec "$1" serve --config "$2"
    else
        exec "$1" serve --config "$2"
    fi
}

# Messages the gateway on PORT has forwarded, from its /metrics (keys under $W).
forwarded() {
    curl -s --cacert "$W/keys/tls/server.crt" -H "Authorization: Bearer $GATEWAY_METRICS_TOKEN" \
        "https://127.0.0.1:$1/metrics" |
        awk '/^gateway_messages_total\{/ && /outcome="forwarded"/ { n += $NF } END { print n + 0 }'
}

# wrk's own rate counts requests sent before its clock starts (see bench/load.lua) and a first
# run after a pause still came out 5-10% above what two cores can do at the CPU each message
# costs; the gateway's count over the middle of the run has no such edge.
sample_rate() {
    local port="$1" secs="$2" out="$3"
    (
        sleep 3
        local a ca b cb
        a=$(date +%s%N); ca=$(forwarded "$port")
        sleep $((secs > 5 ? secs - 4 : 1))
        b=$(date +%s%N); cb=$(forwarded "$port")
        awk -v ca="$ca" -v cb="$cb" -v a="$a" -v b="$b" \
            'BEGIN { printf "%.0f %d %.1f\n", (cb - ca) / ((b - a) / 1e9), cb - ca, (b - a) / 1e9 }' > "$out"
    ) &
}

# Prepares $N distinct ~10 KB police messages sealed to the gateway of $CFG, packed for wrk
# into $W/sealed.pack (needs $W, $GW, $CFG, $N; run from the repository root).
prepare_pack() {
    echo "== prepare $N distinct ~10 KB police messages and seal them (gateway seal)"
    python3 - "$W/xml" "$N" <<'PY'
import sys, uuid
out, n = sys.argv[1], int(sys.argv[2])
src = open("schemas/police/samples/valid-single-incident.xml", encoding="utf-8").read()
child_start = src.index("  <Child ")
child_end = src.index("</Child>") + len("</Child>\n")
child = src[child_start:child_end]
extra = "".join(child.replace('childId="C003"', f'childId="X{k:04d}"') for k in range(42))
body = src[:child_end] + extra + src[child_end:]
for i in range(n):
    doc = body.replace("3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d0016", str(uuid.uuid4()), 1)
    with open(f"{out}/m{i:06d}.xml", "w", encoding="utf-8") as f:
        f.write(doc)
PY
    stat -c '%s bytes per XML document' "$W/xml/m000000.xml"
    K="$W/keys/dev/agencies/police"
    RECIPIENT="$("$GW" recipient --config "$CFG")"
    find "$W/xml" -name '*.xml' -print0 | xargs -0 -n 2000 "$GW" seal --key "$K.key" --cert "$K.crt" \
        --to "$RECIPIENT" --out-dir "$W/sealed" 2>/dev/null
    stat -c '%s bytes per sealed message' "$W/sealed/m000000.xml.sealed"
    # wrk reads the messages from one pack (see bench/load.lua for why not from the files).
    python3 - "$W/sealed" "$W/sealed.pack" <<'PY'
import os, sys
src, pack = sys.argv[1], sys.argv[2]
names = sorted(n for n in os.listdir(src) if n.endswith(".sealed"))
with open(pack, "wb") as out, open(pack + ".sizes", "w") as sizes:
    for n in names:
        with open(os.path.join(src, n), "rb") as f:
            data = f.read()
        out.write(data)
        sizes.write(f"{len(data)}\n")
PY
    # The files just made are written back now rather than during the run (a run that overlapped
    # their writeback had a p99 of 103 ms, the next one 54 ms).
    sync
}
