#!/usr/bin/env bash
# GitOps checks (docs/gitops.md): the Argo CD health check and what Flux (kstatus) sees, both run
# against the sample objects in docs/gitops/test/cases/.
#
#   bash .ci/gitops.sh           check (CI): Lua health check + snippet identity + kstatus port
#   bash .ci/gitops.sh --write   regenerate docs/gitops/argocd-cm-snippet.yaml from the Lua file
#
# Needs Debian's lua5.4 (installed here when missing; CI runs as root) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=docs/gitops
SCRIPT=$DIR/argocd-health.lua
SNIPPET=$DIR/argocd-cm-snippet.yaml

write_snippet() {
  {
    cat <<'EOF'
# Argo CD health check for esinference.io/InferenceEndpoint (docs/gitops.md).
# Merge into the argocd-cm ConfigMap, for example:
#   kubectl -n argocd patch configmap argocd-cm --type merge \
#     --patch-file docs/gitops/argocd-cm-snippet.yaml
# or put the data key under configs.cm in the values of the argo-cd Helm chart.
# Generated from docs/gitops/argocd-health.lua by `bash .ci/gitops.sh --write`; CI fails if the
# embedded script and that file differ.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  resource.customizations.health.esinference.io_InferenceEndpoint: |
EOF
    sed 's/^./    &/' "$SCRIPT"
  } >"$SNIPPET"
}

case "${1:-}" in
  "") ;;
  --write) write_snippet; echo "wrote $SNIPPET"; exit 0 ;;
  *) echo "usage: bash .ci/gitops.sh [--write]" >&2; exit 2 ;;
esac

echo "== gitops: Argo CD health check (lua5.4) and kstatus (Flux)"
if ! command -v lua5.4 >/dev/null 2>&1; then
  echo "installing lua5.4"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq lua5.4 >/dev/null
fi

cases=("$DIR"/test/cases/*.json)
total_passed=0
total_failed=0
status=0
run() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out"
  local summary
  summary=$(printf '%s\n' "$out" | tail -n 1)
  if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    total_passed=$((total_passed + BASH_REMATCH[1]))
    total_failed=$((total_failed + BASH_REMATCH[2]))
  else
    total_failed=$((total_failed + 1))
  fi
  if [[ $rc -ne 0 ]]; then status=1; fi
}

echo "-- Argo CD health (lua5.4 $DIR/test/run.lua)"
run lua5.4 "$DIR/test/run.lua" "$SCRIPT" "$SNIPPET" "${cases[@]}"
echo "-- kstatus (python3 $DIR/test/kstatus_check.py)"
run python3 "$DIR/test/kstatus_check.py" "${cases[@]}"

echo "gitops: $total_passed passed, $total_failed failed"
if [[ $status -ne 0 || $total_failed -ne 0 ]]; then
  exit 1
fi
