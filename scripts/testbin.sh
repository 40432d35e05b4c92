#!/usr/bin/env bash
# Builds the control-plane binaries the tests run (etcd, kube-apiserver,
# kube-controller-manager) from their Go modules, because this project has no
# docker and no download site for prebuilt binaries: only the Go module proxy.
#
# Output: .testbin/k8s-<version>/ with the three binaries; the directory is
# printed as the last line. Idempotent: only missing binaries are built.
#
# `testbin.sh kubectl` also builds kubectl (same version, same directory):
# only `make bench` needs it, for its baseline in the official script's style.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${KS_TESTBIN_DIR:-$root/.testbin}/k8s-$K8S_VERSION"
work="${KS_TESTBIN_DIR:-$root/.testbin}/build-$K8S_VERSION"

wanted=(etcd kube-apiserver kube-controller-manager)
for extra in "$@"; do
  case "$extra" in
    kubectl) wanted+=(kubectl) ;;
    *) echo "testbin: unknown argument $extra (only: kubectl)" >&2; exit 2 ;;
  esac
done
missing=()
for b in "${wanted[@]}"; do
  [ -x "$out/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi

log() { echo "testbin: $*" >&2; }
log "building ${missing[*]} for Kubernetes v$K8S_VERSION (about 8 minutes cold on 2 cores)"
mkdir -p "$out" "$work/cmd/etcd"
cd "$work"

# k8s.io/kubernetes cannot be required on its own: it points every staging
# module at ./staging. Read its own go.mod to learn which modules those are and
# pin each to the matching v0.x tag.
kgomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
[ -f "$kgomod" ] || { log "could not download k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
staging="v0.${K8S_VERSION#1.}"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$kgomod")"
go_line="$(awk '$1=="go"{print; exit}' "$kgomod")"

{
  echo "module ks-clean.local/testbin"
  echo
  echo "$go_line"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes v$K8S_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $etcd_version"
  echo ")"
  echo
  echo "replace ("
  grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$kgomod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod

# etcd's own main package lives in its root module; etcdmain.Main is the same
# entry point without pulling that module (and its separate dependency set) in.
cat > cmd/etcd/main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO

# `go mod tidy` on this module hangs; `go get` of exactly what we build does not.
get=(
  "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION"
  "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION"
  "go.etcd.io/etcd/server/v3/etcdmain@$etcd_version"
)
for b in "${missing[@]}"; do
  if [ "$b" = kubectl ]; then get+=("k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"); fi
done
GOFLAGS=-mod=mod go get "${get[@]}" >&2

minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

for b in "${missing[@]}"; do
  case "$b" in
    etcd) pkg=./cmd/etcd ;;
    *) pkg="k8s.io/kubernetes/cmd/$b" ;;
  esac
  log "go build $b"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/$b.tmp" "$pkg" >&2
  mv "$out/$b.tmp" "$out/$b"
done

"$out/kube-apiserver" --version >&2
echo "$out"
