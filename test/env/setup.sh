#!/usr/bin/env bash
# Builds the real test infrastructure once into a cache outside the repo and reuses it:
#   kube-apiserver, kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3).
# Everything comes from the Go module proxy; nothing is downloaded as a prebuilt binary.
# Usage: test/env/setup.sh            (prints the bin directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${WEIR_CACHE:-$HOME/.cache/weir}
bin=$cache/bin
mkdir -p "$bin"

# A stamp per binary: the hash of the go.mod/go.sum that built it, so a version bump rebuilds.
stamp_of() { cat "$here/$1/go.mod" "$here/$1/go.sum" | sha256sum | cut -c1-16; }

build() { # build <module dir> <package> <output name>
  local dir=$1 pkg=$2 out=$3 stamp
  stamp=$(stamp_of "$dir")
  if [[ -x "$bin/$out" && "$(cat "$bin/$out.stamp" 2>/dev/null)" == "$stamp" ]]; then return 0; fi
  echo "weir test env: building $out (first run only; takes a few minutes)" >&2
  (cd "$here/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  echo "$stamp" > "$bin/$out.stamp"
}

build etcd . etcd
build kube k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver
build kube k8s.io/kubernetes/cmd/kubectl kubectl
echo "$bin"
