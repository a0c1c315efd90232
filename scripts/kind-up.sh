#!/usr/bin/env bash
# For machines WITH Docker: a kind cluster running weir and the example project.
# (weir's own tests run against a real kube-apiserver + etcd instead; see test/env.)
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${CLUSTER:-weir}
image=weir:dev
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
helm upgrade --install weir helm/weir --namespace weir-system --create-namespace \
  --set image.repository=weir --set image.tag=dev --set image.pullPolicy=Never
kubectl create namespace web --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f manifests/examples/web-analytics/
kubectl get weir -n web
