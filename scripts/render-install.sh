#!/usr/bin/env bash
# Renders manifests/install.yaml (plain `kubectl apply -f`) from helm/weir with the default values,
# and manifests/argocd/argocd-cm.yaml from the health checks in manifests/argocd/*-health.lua.
# helm comes from test/env/setup.sh (built from its Go module). A test fails when either is stale.
# Usage: scripts/render-install.sh [OUT_DIR]      (default: manifests/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/manifests}
mkdir -p "$dir/argocd"
out=$dir/install.yaml
helm=${HELM:-$(bash "$root/test/env/setup.sh")/helm}
{
  echo "# weir: the operator, its CRDs and RBAC in namespace weir-system, for \`kubectl apply --server-side -f\`."
  echo "# Generated from helm/weir (default values) by scripts/render-install.sh; edit the chart, not this file."
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Namespace"
  echo "metadata: {name: weir-system}"
  "$helm" template weir "$root/helm/weir" --namespace weir-system --include-crds
} > "$out.tmp"
mv "$out.tmp" "$out"

cm=$dir/argocd/argocd-cm.yaml
{
  echo "# Argo CD health checks for weir's kinds: merge into the argocd-cm ConfigMap (e.g. as a kustomize patch)."
  echo "# Generated from manifests/argocd/*-health.lua by scripts/render-install.sh; edit the .lua files."
  echo "apiVersion: v1"
  echo "kind: ConfigMap"
  echo "metadata:"
  echo "  name: argocd-cm"
  echo "  namespace: argocd"
  echo "data:"
  for kind in DataSource Pipe Endpoint; do
    echo "  resource.customizations.health.weir.dev_$kind: |"
    sed 's/^/    /' "$root/manifests/argocd/${kind,,}-health.lua"
  done
} > "$cm.tmp"
mv "$cm.tmp" "$cm"
