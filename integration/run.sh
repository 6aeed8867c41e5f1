#!/usr/bin/env bash
# The whole test suite: what it needs, the lint gate, unit and integration tests, and the check
# that the release binary is statically linked. Run as root on Debian 12 (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# What the tests need from the system.
need=()
command -v curl >/dev/null || need+=(curl)
command -v file >/dev/null || need+=(file)
command -v gcc >/dev/null || need+=(gcc)
# libseccomp (linked statically into kelp), the test-image and registry tools, crun for the
# runtime benchmark's reference.
for p in libseccomp-dev busybox-static docker-registry skopeo umoci zstd jq apache2-utils crun iproute2 tmux python3 \
  python3-cryptography openssl debootstrap; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
for v in 1.27 1.28 1.30 1.31 1.32 1.33; do
  if [ ! -x "/usr/lib/google-cloud-sdk/bin/kubectl.$v" ]; then
    echo "kubectl $v is missing at /usr/lib/google-cloud-sdk/bin/kubectl.$v: the tests drive the real kubectl" >&2
    exit 1
  fi
done
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# CI builds from a clean clone: incremental caches would only cost disk (several GB).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
free_disk() {
  local dir="${CARGO_TARGET_DIR:-.}"
  [ -d "$dir" ] || dir=.
  df -h --output=avail,target "$dir" | awk 'NR == 2 { print "free disk: " $1 " on " $2 }'
}
free_disk

log "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

log "test images (integration/fixtures/build-images.sh; fast when built)"
integration/fixtures/build-images.sh

log "unit and integration tests"
free_disk
cargo test --all-targets

log "static release binary"
free_disk
target=x86_64-unknown-linux-gnu
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
  RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' cargo build --release --target "$target" --bin kelp
bin="target/$target/release/kelp"
file "$bin"
# "statically linked", not "static-pie linked": position-dependent (see build.rs).
file "$bin" | grep -Eq 'statically linked' || { echo "$bin is not a statically linked, non-PIE executable" >&2; exit 1; }
"$bin" --version
ls -l "$bin" | awk '{ printf "binary size: %.1f MiB\n", $5 / 1048576 }'
echo "static binary check: 1 passed, 0 failed"
