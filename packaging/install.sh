#!/bin/sh
# Install kelp from a local binary (air-gapped friendly).
#   INSTALL_KELP_BIN   path of the kelp binary to install (default: ./kelp, then the release build)
#   INSTALL_KELP_BIN_DIR  where to put it (default /usr/local/bin)
#   INSTALL_KELP_EXEC  extra arguments for `kelp server`
#   INSTALL_KELP_SKIP_START=true  install and enable, do not start
set -eu
BIN_DIR=${INSTALL_KELP_BIN_DIR:-/usr/local/bin}
here=$(cd "$(dirname "$0")" && pwd)
src=${INSTALL_KELP_BIN:-}
if [ -z "$src" ]; then
    for c in ./kelp "$here/../target/x86_64-unknown-linux-gnu/release/kelp" "$here/../target/release/kelp"; do
        [ -x "$c" ] && { src=$c; break; }
    done
fi
[ -n "$src" ] && [ -x "$src" ] || { echo "kelp binary not found; set INSTALL_KELP_BIN" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

install -m 0755 "$src" "$BIN_DIR/kelp.new" && mv -f "$BIN_DIR/kelp.new" "$BIN_DIR/kelp"
install -d -m 0755 /etc/kelp /etc/kelp/config.yaml.d
install -d -m 0700 /var/lib/kelp
install -m 0755 "$here/uninstall.sh" "$BIN_DIR/kelp-uninstall.sh"
if [ ! -e /sys/fs/cgroup/memory ] && ! grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    echo "warning: the memory cgroup controller is not enabled (on a Raspberry Pi add 'cgroup_memory=1 cgroup_enable=memory' to cmdline.txt)" >&2
fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    install -m 0644 "$here/kelp.service" /etc/systemd/system/kelp.service
    umask 077
    printf 'KELP_EXEC=%s\n' "${INSTALL_KELP_EXEC:-}" > /etc/default/kelp
    systemctl daemon-reload
    systemctl enable kelp.service
    [ "${INSTALL_KELP_SKIP_START:-}" = true ] || systemctl restart kelp.service
elif command -v rc-update >/dev/null 2>&1; then
    install -m 0755 "$here/kelp.openrc" /etc/init.d/kelp
    umask 077
    printf 'KELP_EXEC="%s"\n' "${INSTALL_KELP_EXEC:-}" > /etc/kelp/kelp.env
    rc-update add kelp default
    [ "${INSTALL_KELP_SKIP_START:-}" = true ] || rc-service kelp restart
else
    echo "no systemd or openrc found: start it with '$BIN_DIR/kelp server'" >&2
fi
echo "kelp installed; kubeconfig: /etc/kelp/kelp.yaml"
