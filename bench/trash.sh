# Sourced by the load benchmarks: old runs' files are moved into a trash directory beside the
# work directory (a rename) and deleted only at the start of the next benchmark, which then waits
# until the kernel no longer treats those inodes as recently freed. ext4 without a journal (as on
# the reference VM) skips inodes freed in the last `vm.dirty_expire_centisecs` (30 s) when it
# allocates new ones, rescanning them for every file created: after deleting tens of thousands of
# files, creating the two queue files per message took 20-25% of the gateway's CPU (perf, see
# docs/benchmarks.md), which would be measured as the gateway's cost.
#
#   trash PATH      move PATH into the trash ($TRASH)
#   empty_trash     delete the trash, then wait out the recently-freed window if anything was deleted
TRASH="${TRASH:?set TRASH before sourcing bench/trash.sh}"
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
