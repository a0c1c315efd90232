#!/usr/bin/env bash
# For machines WITH Docker, kind, kubectl and helm: a kind cluster running ClickHouse, weir (from
# this checkout's image) and the example project. Not run by weir's tests (no Docker there; they
# use a real kube-apiserver + etcd, see test/env).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${CLUSTER:-weir}
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"

# ClickHouse, user weir/weir.
kubectl create namespace clickhouse --dry-run=client -o yaml | kubectl apply -f -
kubectl -n clickhouse create deployment clickhouse --image=clickhouse/clickhouse-server:25.8 --port=8123 --dry-run=client -o yaml | kubectl apply -f -
kubectl -n clickhouse set env deployment/clickhouse CLICKHOUSE_USER=weir CLICKHOUSE_PASSWORD=weir
kubectl -n clickhouse expose deployment clickhouse --port=8123 --dry-run=client -o yaml | kubectl apply -f -

# weir: the image, the connection Secret, the chart.
docker build -t weir:dev .
kind load docker-image weir:dev --name "$cluster"
kubectl create namespace weir-system --dry-run=client -o yaml | kubectl apply -f -
kubectl -n weir-system create secret generic weir-clickhouse --from-literal=url=http://clickhouse.clickhouse.svc:8123 \
  --from-literal=username=weir --from-literal=password=weir --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install weir helm/weir --namespace weir-system \
  --set image.repository=weir --set image.tag=dev --set image.pullPolicy=Never --set workers.clickhousePasswordSecret=clickhouse-password

# The example project (its Kafka is not installed here: the ingestion pods wait for it).
kubectl create namespace web --dry-run=client -o yaml | kubectl apply -f -
kubectl -n web create secret generic clickhouse-password --from-literal=password=weir --dry-run=client -o yaml | kubectl apply -f -
kubectl -n web create secret generic top-pages-readers --from-literal=dashboard=change-me --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f manifests/examples/web-analytics/
kubectl -n weir-system rollout status deployment/weir-operator
kubectl get weir -n web
