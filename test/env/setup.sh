#!/usr/bin/env bash
# Builds the real test infrastructure once into a cache outside the repo and reuses it:
#   kube-apiserver, kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), helm (helm.sh/helm/v3),
#   argocd-health (Argo CD's Lua interpreter, github.com/yuin/gopher-lua).
# Everything comes from the Go module proxy; nothing is downloaded as a prebuilt binary.
# Usage: test/env/setup.sh            (prints the bin directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${WEIR_CACHE:-$HOME/.cache/weir}
bin=$cache/bin
mkdir -p "$bin"

# A stamp per binary: the hash of the go.mod/go.sum and ldflags that built it, so a version bump rebuilds.
stamp_of() { { cat "$here/$1/go.mod" "$here/$1/go.sum"; [[ -z $2 ]] || echo "$2"; } | sha256sum | cut -c1-16; }

build() { # build <module dir> <package> <output name> [extra ldflags]
  local dir=$1 pkg=$2 out=$3 extra=${4:-} stamp
  stamp=$(stamp_of "$dir" "$extra")
  if [[ -x "$bin/$out" && "$(cat "$bin/$out.stamp" 2>/dev/null)" == "$stamp" ]]; then return 0; fi
  echo "weir test env: building $out (first run only; takes a few minutes)" >&2
  (cd "$here/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w $extra" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  echo "$stamp" > "$bin/$out.stamp"
}

# A plain `go build` reports gitVersion v0.0.0-master; stamp the real release like hack/lib/version.sh does,
# so /version, `kubectl version` and client skew checks see v1.34.x.
kube_version=$(awk '$1 == "k8s.io/kubernetes" {print $2} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kube/go.mod")
[[ $kube_version =~ ^v([0-9]+)\.([0-9]+)\. ]] || { echo "cannot read k8s.io/kubernetes version from kube/go.mod" >&2; exit 1; }
kube_ldflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=${BASH_REMATCH[1]} -X $pkg.gitMinor=${BASH_REMATCH[2]}"
  kube_ldflags+=" -X $pkg.gitTreeState=clean"
done

build etcd . etcd
build kube k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kube_ldflags"
build kube k8s.io/kubernetes/cmd/kubectl kubectl "$kube_ldflags"
# helm shares k8s.io/* v0.34.4 with kube/, so most of its packages come from Go's build cache.
helm_version=$(awk '$1 == "helm.sh/helm/v3" {print $2} $1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/helm/go.mod")
build helm helm.sh/helm/v3/cmd/helm helm "-X helm.sh/helm/v3/internal/version.version=$helm_version"
build argocd . argocd-health
echo "$bin"
