#!/usr/bin/env bash
# The chart's monitoring files: the alert rules and the Grafana dashboard's queries.
#
#   bash .ci/monitoring.sh
#
# promtool comes from Debian's `prometheus` package (apt-get download, no install, no root
# needed for the download itself; about 19 MB, once), unpacked and cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/inference-operator-tools like the tools of manifests.sh.
# Checks: `promtool check rules` on files/prometheus-rules.yaml, `promtool test rules` on
# tests/monitoring/prometheus-rules.test.yaml, and every dashboard target expression parsed by
# promtool (as recording rules of a generated rule file). The dashboard's structure, the
# rendered chart objects and the metric names against the operator's registry are checked by
# tests/chart_monitoring.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=charts/inference-operator/files
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/inference-operator-tools
PROM_DEB=prometheus
BIN=$TOOLS/promtool-debian
if [[ ! -x $BIN/promtool ]]; then
  echo "== fetching promtool (Debian package $PROM_DEB) into $BIN"
  mkdir -p "$TOOLS"
  dl=$(mktemp -d "$TOOLS/.dl.XXXXXX")
  chmod 0777 "$dl" # apt-get download writes as _apt where it can
  (cd "$dl" && apt-get download -q "$PROM_DEB" >/dev/null)
  dpkg-deb -x "$dl"/${PROM_DEB}_*.deb "$dl/x"
  mkdir -p "$BIN.tmp" && mv "$dl/x/usr/bin/promtool" "$BIN.tmp/"
  rm -rf "$dl" "$BIN" && mv "$BIN.tmp" "$BIN"
fi
promtool() { "$BIN/promtool" "$@"; }
echo "== tools: $(promtool --version 2>&1 | head -1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== promtool check rules $FILES/prometheus-rules.yaml"
promtool check rules "$FILES/prometheus-rules.yaml"

echo "== promtool test rules tests/monitoring/prometheus-rules.test.yaml"
promtool test rules tests/monitoring/prometheus-rules.test.yaml

echo "== dashboard queries parse ($FILES/grafana-dashboard.json)"
python3 - "$FILES/grafana-dashboard.json" "$work/dashboard-rules.yaml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            exprs.append((p["title"], t["refId"], t["expr"]))
walk(dashboard["panels"])
if not exprs:
    sys.exit("no dashboard targets found")
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (_, _, expr) in enumerate(exprs):
        out.write(f"      - record: dashboard:target_{i}\n        expr: {json.dumps(expr)}\n")
print(f"  {len(exprs)} target expressions")
PY
promtool check rules "$work/dashboard-rules.yaml"
echo "== monitoring: all checks passed"
