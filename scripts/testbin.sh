#!/usr/bin/env bash
# Builds the control-plane binaries the tests run (etcd, kube-apiserver,
# kube-controller-manager) from their Go modules, because this project has no
# docker and no download site for prebuilt binaries: only the Go module proxy.
#
# Output: k8s-<version>/ with the three binaries, under $KS_TESTBIN_DIR or
# else the user's cache (${XDG_CACHE_HOME:-~/.cache}/ks-clean/testbin), which
# every clone shares: a fresh clone (CI's) builds nothing built before. The
# directory is printed as the last line. Idempotent: only missing binaries
# are built.
#
# `testbin.sh kubectl` also builds kubectl (same version, same directory):
# only `make bench` needs it, for its baseline in the official script's style.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${KS_TESTBIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ks-clean/testbin}"
out="$base/k8s-$K8S_VERSION"
work="$base/build-$K8S_VERSION"

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
kjson="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION")"
kgomod="$(sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' <<<"$kjson")"
kdir="$(sed -n 's/.*"Dir": "\(.*\)",*/\1/p' <<<"$kjson")"
[ -f "$kgomod" ] && [ -d "$kdir" ] || { log "could not download k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
staging="v0.${K8S_VERSION#1.}"
# Up to 1.26, go.etcd.io/etcd/server/v3 is (also) in its replace block
# ("X => X v"): take the replacement, else the required version.
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3" { if ($2=="=>") r=$4; else if (q=="") q=$2 }
  END { print (r!="" ? r : q) }' "$kgomod")"
go_line="$(awk '$1=="go"{print; exit}' "$kgomod")"

# The module proxy lacks a few staging tags (seen: kube-controller-manager
# v0.22.17; controller-manager, kube-controller-manager, kube-proxy v0.26.15).
# Patch tags of a staging module differ from the previous ones only by
# cherry-picks, rare outside client-go/apiserver: fall back to the nearest
# earlier patch (at most 3 back), and say so. Only modules k8s.io/kubernetes
# requires are checked (the sample-* ones are never built).
staging_lines=""
for m in $(grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$kgomod" | awk '{print $1}'); do
  v="$staging"
  if awk -v m="$m" '$1==m && $2!="=>"{f=1} END{exit !f}' "$kgomod"; then
    p="${staging##*.}"
    until go mod download "$m@${staging%.*}.$p" 2>/dev/null; do
      p=$((p-1))
      if [ "$p" -lt 0 ] || [ "$p" -lt $((${staging##*.} - 3)) ]; then
        log "$m@$staging is not on the module proxy, nor its 3 previous patches"; exit 1
      fi
    done
    v="${staging%.*}.$p"
    [ "$v" = "$staging" ] || log "$m@$staging is not on the module proxy: using $v"
  fi
  staging_lines+="	$m => $m $v"$'\n'
done

# Up to 1.26, k8s.io/kubernetes also pins every dependency in its replace
# block; replace directives of a dependency are ignored, so repeat them here
# to build what that release was tested with (later releases have none).
# Exception, for today's Go: reflect2 before v1.0.2 crashes at run time with
# Go >= 1.18 (1.22 pins v1.0.1).
pin_lines="$(grep -E '^\s*[^ ]+ => [^ ]+ v[^ ]*' "$kgomod" | grep -v '=> \./' |
  awk '$1=="github.com/modern-go/reflect2" && ($4=="v1.0.0" || $4=="v1.0.1") { $4="v1.0.2" }
       { print "\t" $1 " => " $3 " " $4 }' || true)"

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
  printf '%s' "$staging_lines"
  [ -z "$pin_lines" ] || echo "$pin_lines"
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

# Older releases (1.22.17; not 1.24.17 nor 1.26.15) do not carry
# kube-apiserver's generated OpenAPI definitions
# (pkg/generated/openapi/zz_generated.openapi.go, made by `make` upstream). Generate them as upstream's
# build/root/Makefile.generated_files did: openapi-gen of the kube-openapi
# this release pins, over every package of k8s.io/kubernetes and its staging
# modules (but code-generator and sample-apiserver) with a `+k8s:openapi-gen=`
# tag. The module cache is read-only, and `go build -overlay` refuses files
# beneath it: k8s.io/kubernetes is replaced by a tree of symlinks into the
# module cache (no copy) that holds the generated file.
if [[ " ${missing[*]} " == *" kube-apiserver "* ]] && [ ! -f "$kdir/pkg/generated/openapi/zz_generated.openapi.go" ]; then
  gen="$work/openapi"
  genfile="$gen/out/k8s.io/kubernetes/pkg/generated/openapi/zz_generated.openapi.go"
  if [ ! -f "$genfile" ]; then
    log "generating kube-apiserver's OpenAPI definitions"
    mkdir -p "$gen"
    GOFLAGS=-mod=mod go build -o "$gen/openapi-gen" k8s.io/kube-openapi/cmd/openapi-gen >&2
    tagged_dirs() { # module-path dir: import paths of its openapi-gen tagged packages
      (cd "$2" && find . \( -name '_*' -o -name '.?*' \) -prune -o -type f -name '*.go' -print |
        xargs -r grep -l '^// *+k8s:' | xargs -r grep -l '+k8s:openapi-gen=' |
        xargs -r -n1 dirname | sed "s|^\.|$1|") || true # grep finds none in some xargs batches
    }
    {
      tagged_dirs k8s.io/kubernetes "$kdir"
      printf '%s' "$staging_lines" | while read -r m _ _ v; do
        case "$m" in k8s.io/code-generator|k8s.io/sample-*) continue ;; esac
        awk -v m="$m" '$1==m && $2!="=>"{f=1} END{exit !f}' "$kgomod" || continue
        d="$(go mod download -json "$m@$v" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
        tagged_dirs "$m" "$d"
      done
    } | LC_ALL=C sort -u > "$gen/input-dirs"
    grep -qx k8s.io/api/core/v1 "$gen/input-dirs" || { log "no OpenAPI input packages found (see $gen/input-dirs)"; exit 1; }
    header="$kdir/hack/boilerplate/boilerplate.generatego.txt"
    [ -f "$header" ] || header=/dev/null
    # -r: API rule violations go to a report instead of failing the run.
    "$gen/openapi-gen" -i "$(paste -sd, "$gen/input-dirs")" \
      -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
      -o "$gen/out.tmp" -h "$header" -r "$gen/violations.report" >"$gen/openapi-gen.log" 2>&1 ||
      { tail -20 "$gen/openapi-gen.log" >&2; log "openapi-gen failed; log in $gen/openapi-gen.log"; exit 1; }
    rm -rf "$gen/out" && mv "$gen/out.tmp" "$gen/out"
  fi
  rm -rf "$gen/kubernetes"
  link_all_but() { # dir in the module, the one entry to leave out
    mkdir -p "$gen/kubernetes/$1"
    for f in "$kdir/$1"/*; do
      [ "${f##*/}" = "$2" ] || ln -s "$f" "$gen/kubernetes/$1/"
    done
  }
  link_all_but . pkg
  link_all_but pkg generated
  link_all_but pkg/generated openapi
  link_all_but pkg/generated/openapi -
  cp "$genfile" "$gen/kubernetes/pkg/generated/openapi/"
  go mod edit -replace "k8s.io/kubernetes=./openapi/kubernetes"
fi

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
