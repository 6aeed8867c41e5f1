#!/usr/bin/env bash
# Regenerates data/protobuf/kubernetes.fds.gz: the Kubernetes API protobuf schema as a gzipped
# FileDescriptorSet, compiled from the upstream generated.proto files with protox (pure Rust, no protoc).
#
# Usage: data/protobuf/generate.sh [API_CHECKOUT APIMACHINERY_CHECKOUT]
#   Without arguments it clones k8s.io/api and k8s.io/apimachinery (github.com/kubernetes/{api,apimachinery})
#   at $TAG. With arguments, it reads the given git checkouts (or bare git directories) at $TAG.
# Needs: git, cargo (the generator in data/protobuf/gen is a stand-alone crate, not part of kelp's build).
set -euo pipefail
TAG=${TAG:-v0.33.0}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
api=${1:-}
machinery=${2:-}
if [ -z "$api" ]; then
  git clone --quiet --bare --filter=blob:none https://github.com/kubernetes/api "$work/api.git"
  git clone --quiet --bare --filter=blob:none https://github.com/kubernetes/apimachinery "$work/apimachinery.git"
  api=$work/api.git machinery=$work/apimachinery.git
fi
export_protos() { # git-dir dest
  mkdir -p "$2"
  git -C "$1" archive "$TAG" | tar -x -C "$2" --wildcards '*.proto'
}
export_protos "$api" "$work/root/k8s.io/api"
export_protos "$machinery" "$work/root/k8s.io/apimachinery"
# Test-only API group, not part of Kubernetes' served API.
rm -rf "$work/root/k8s.io/apimachinery/pkg/apis/testapigroup"
cargo run --quiet --manifest-path "$here/gen/Cargo.toml" --target-dir "$work/target" -- \
  "$work/root" "$here/kubernetes.fds.gz"
