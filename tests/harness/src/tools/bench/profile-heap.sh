#!/bin/bash
# Heap profile of the operator, per object (docs/benchmarks.md#memory-issue-16).
#
#   tests/harness/src/tools/bench/profile-heap.sh LABEL [N]
#
# Runs the quick benchmark with N objects (default 300) and the debug operator under
# `valgrind --tool=massif`, takes a detailed massif snapshot through vgdb when the operator is
# idle (one object) and when the N objects have converged, and prints the heap per owner and
# per object (massif_owners.py). Under valgrind the debug operator converges ~100 objects a
# minute on a 2-core machine: N = 300 takes ~6 minutes.
set -euo pipefail
label=$1
n=${2:-300}
root=$(cd "$(dirname "$0")/../../../../.." && pwd)
out=$root/target/prof
mkdir -p "$out"
cd "$root"
cargo build -q --bin inference-operator
cargo build -q -p inference-testenv --bin bench
cat > "$out/massif-op.sh" <<WRAP
#!/bin/sh
exec valgrind --tool=massif --threshold=0.5 --depth=40 --massif-out-file=$out/massif.%p.out $root/target/debug/inference-operator "\$@"
WRAP
chmod +x "$out/massif-op.sh"
log=$out/bench-$label.err
: > "$log"
target/debug/bench --quick --endpoints "$n" --unrelated-secrets 0 --rotations 1 --create-samples 1 \
  --baseline-sample "$n" --recheck-rounds 1 --ready-timeout 20m --operator-bin "$out/massif-op.sh" \
  --json-out "$out/report-$label.json" > "$out/bench-$label.txt" 2>> "$log" &
bench=$!
snapshot() {
  local pid
  pid=$(pgrep -n -f "valgrind.bin --tool=massif --threshold=0.5 --depth=40 --massif-out-file=$out/")
  vgdb --pid="$pid" detailed_snapshot "$out/$label-$1.massif" > /dev/null 2>&1
  echo "massif snapshot $1: $out/$label-$1.massif (operator pid $pid)"
}
wait_for() {
  until grep -q "$1" "$log"; do
    sleep 1
    kill -0 "$bench" 2> /dev/null || { echo "the benchmark ended early; see $log"; exit 1; }
  done
}
wait_for "convergence:"
snapshot idle
# The sequential baseline starts right after the N objects converged and RSS was read.
wait_for "sequential baseline"
snapshot at-n
wait "$bench"
python3 "$(dirname "$0")/massif_owners.py" "$out/$label-idle.massif" "$out/$label-at-n.massif" "$((n + 1))"
