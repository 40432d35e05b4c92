#!/usr/bin/env bash
# The demo: a local control plane seeded with the incident's state (a
# KubeSphere 3.3 host whose KubeFed has two records for one cluster and
# production namespaces owned by workspaces), then ks-clean against it.
# Ctrl-C stops every process it started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export KUBEBUILDER_ASSETS="$(bash scripts/testbin.sh | tail -n 1)"
go build -ldflags "-X github.com/ks-clean/ks-clean/internal/cli.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev) -X github.com/ks-clean/ks-clean/internal/cli.commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" -o bin/ks-clean .
go build -o bin/ks-devcluster ./test/cmd/ks-devcluster

dir="$root/.demo"
log="$(mktemp)"
bin/ks-devcluster --scenario "${SCENARIO:-incident}" --dir "$dir" >"$log" 2>&1 &
pid=$!
cleanup() {
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting a control plane seeded with the incident (a few seconds)..."
until grep -q '^ready:' "$log"; do
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.5
done
cat "$log"
export KUBECONFIG="$dir/kubeconfig"

run() { echo; echo "\$ $*"; "$@" || echo "(exit code $?)"; }
run bin/ks-clean version
run bin/ks-clean scan
run bin/ks-clean plan --out "$dir/plan.json"
run bin/ks-clean apply "$dir/plan.json" --dry-run
run bin/ks-clean apply "$dir/plan.json" --confirm
run bin/ks-clean scan

if [ -t 0 ] && [ "${DEMO_HOLD:-1}" = 1 ]; then
  cat <<MSG

The control plane keeps running. Try ks-clean yourself:
  export KUBECONFIG=$KUBECONFIG
  bin/ks-clean --help
Press Ctrl-C to stop it.
MSG
  wait "$pid"
else
  echo; echo "Stopping the control plane (run 'make demo' from a terminal to keep it)."
fi
