#!/usr/bin/env bash
# Build the real servers the test suite runs against, from their Go modules, into a cache
# directory outside the repository:
#
#   ${CIVICML_TESTCLUSTER_CACHE:-~/.cache/civicml/testcluster}/<key>/bin/
#     etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok minio
#
# <key> is a hash of versions.env (which also carries BUILD_REVISION, bumped whenever this script
# changes how binaries are built), so a pin change builds a new set and an unchanged checkout
# reuses the old one. Builds are guarded by flock: a second caller (another `make test` on the
# same machine) waits for the first build instead of building again; a caller whose binaries are
# all present returns at once without touching the lock.
#
# Usage: tools/testcluster/build.sh [all|minio|kube|kwok]...   (default: all)
#        tools/testcluster/build.sh --print-bin-dir             (prints the bin dir, builds nothing)
#
# Nothing upstream is committed: only this script and the pins. Kubernetes cannot be
# `go install`ed (its go.mod replaces the k8s.io/* staging modules with ./staging paths), so a
# small build module is generated that requires k8s.io/kubernetes and pins every staging module
# named in its replace block to the matching v0.x.y; etcd is built in the same module because
# k8s.io/kubernetes already requires the pinned etcd release (one graph, shared packages).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

key="$(sha256sum <"$here/versions.env" | cut -c1-16)"
root="${CIVICML_TESTCLUSTER_CACHE:-$HOME/.cache/civicml/testcluster}"
cache="$root/$key"
bin="$cache/bin"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
  echo "$bin"
  exit 0
fi

die() { echo "testcluster build: error: $*" >&2; exit 1; }

have() { local f; for f in "$@"; do [[ -x "$bin/$f" ]] || return 1; done; }
declare -A BINARIES=(
  [minio]="minio"
  [kube]="etcd kube-apiserver kube-controller-manager kube-scheduler kubectl"
  [kwok]="kwok"
)
targets=("$@")
[[ ${#targets[@]} -eq 0 || "${targets[0]}" == "all" ]] && targets=(minio kube kwok)
wanted=()
for t in "${targets[@]}"; do
  [[ -n "${BINARIES[$t]:-}" ]] || die "unknown target '$t' (expected all, minio, kube or kwok)"
  read -ra names <<<"${BINARIES[$t]}"
  wanted+=("${names[@]}")
done
if have "${wanted[@]}" && { [[ " ${targets[*]} " != *" kwok "* ]] || [[ -d "$bin/kwok-stages" ]]; }; then
  echo "testcluster build: ${targets[*]} already built in $bin" >&2
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed (need Go >= 1.26 to build the test servers).
  Install Go, or opt out of the cluster tests explicitly with CIVICML_SKIP_CLUSTER=1 (not allowed in CI)."
command -v flock >/dev/null 2>&1 || die "flock (util-linux) is required to guard concurrent builds"

mkdir -p "$cache" "$bin"
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  echo "testcluster build: another build holds $cache/build.lock; waiting for it (up to 60 min)..." >&2
  flock -w 3600 9 || die "timed out waiting for the build lock $cache/build.lock"
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false"
ldflags_common="-s -w"
NICE=(nice -n 10)

tmpbin="$cache/bin.tmp"
rm -rf "$tmpbin"
mkdir -p "$tmpbin"

publish() {  # move freshly built binaries into bin/ (rename is atomic per file)
  local f
  for f in "$@"; do
    [[ -x "$tmpbin/$f" ]] || die "the build produced no $f"
    mv -f "$tmpbin/$f" "$bin/$f"
  done
}

timed() {  # timed NAME CMD... : run, print and record the wall time
  local name="$1"; shift
  local t0 t1 log="$cache/build-$name.log"
  t0=$(date +%s)
  echo "testcluster build: building $name (log: $log) ..." >&2
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "building $name failed; full log: $log"
  fi
  t1=$(date +%s)
  echo "testcluster build: built $name in $((t1 - t0)) s" >&2
  echo "$(date -u +%FT%TZ) $name $((t1 - t0))s nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)" \
    >>"$cache/build-times.txt"
}

build_minio() {
  have minio && return 0
  timed minio env GOBIN="$tmpbin" "${NICE[@]}" go install -trimpath -ldflags="$ldflags_common" \
    "github.com/minio/minio@$MINIO_VERSION"
  publish minio
}

build_kwok() {
  have kwok && [[ -d "$bin/kwok-stages" ]] && return 0
  timed kwok env GOBIN="$tmpbin" "${NICE[@]}" go install -trimpath -ldflags="$ldflags_common" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  publish kwok
  # KWOK's own default stages (what kwokctl configures), copied verbatim from the pinned module so
  # the start code never depends on the Go module cache still holding them.
  local src stages="$bin/kwok-stages"
  src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  mkdir -p "$stages"
  cp "$src/node/fast/node-initialize.yaml" "$src/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "$src/pod/fast/pod-ready.yaml" "$src/pod/fast/pod-complete.yaml" "$src/pod/fast/pod-delete.yaml" "$stages/" ||
    die "KWOK's default stages are missing from $src"
}

kube_module() {  # generate the build module in $cache/kube-build
  local mod="$cache/kube-build" gomod staging
  mkdir -p "$mod"
  gomod="$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION's go.mod"
  # Every k8s.io/* module k8s.io/kubernetes replaces with ./staging/src/k8s.io/<name>.
  staging="$(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}')"
  [[ -n "$staging" ]] || die "found no staging replace directives in $gomod"
  {
    echo "module civicml.local/testcluster-kube"
    echo
    echo "go 1.26.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $KUBERNETES_STAGING_VERSION"; done
    echo ")"
  } >"$mod/go.mod"
  rm -f "$mod/go.sum"
  echo "$mod"
}

build_kube() {
  have etcd kube-apiserver kube-controller-manager kube-scheduler kubectl && return 0
  local mod v="${KUBERNETES_VERSION#v}" ld
  mod="$(kube_module)"
  # What hack/lib/version.sh stamps into a release build: the apiserver's /version, its
  # emulation/compatibility version and kubectl's skew check all read these.
  ld="$ldflags_common"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=${v%%.*}"
    ld+=" -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2) -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  # One `go build` for all five commands, so shared packages compile once.
  timed kube bash -c "cd '$mod' && ${NICE[*]} go build -trimpath -ldflags='$ld' -o '$tmpbin/' \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3"
  mv -f "$tmpbin/v3" "$tmpbin/etcd" 2>/dev/null || true
  [[ -x "$tmpbin/server" ]] && mv -f "$tmpbin/server" "$tmpbin/etcd"
  publish etcd kube-apiserver kube-controller-manager kube-scheduler kubectl
}

start=$(date +%s)
for t in "${targets[@]}"; do
  case "$t" in
    minio) build_minio ;;
    kube) build_kube ;;
    kwok) build_kwok ;;
  esac
done
rm -rf "$tmpbin"
echo "testcluster build: binaries ready in $bin ($(($(date +%s) - start)) s)" >&2
