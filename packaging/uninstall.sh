#!/bin/sh
# Remove kelp: stop the service, remove units, binary, configuration and state.
set -eu
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
BIN_DIR=${INSTALL_KELP_BIN_DIR:-/usr/local/bin}
if command -v systemctl >/dev/null 2>&1 && [ -f /etc/systemd/system/kelp.service ]; then
    systemctl disable --now kelp.service || true
    rm -f /etc/systemd/system/kelp.service /etc/default/kelp
    systemctl daemon-reload
fi
if [ -f /etc/init.d/kelp ]; then
    rc-service kelp stop || true
    rc-update del kelp default || true
    rm -f /etc/init.d/kelp
fi
# Unmount anything kelp left under its data dir before removing it.
if [ -d /var/lib/kelp ]; then
    awk '{print $2}' /proc/mounts | grep '^/var/lib/kelp' | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf /var/lib/kelp
fi
rm -rf /etc/kelp /var/log/pods/kelp-* 2>/dev/null || true
rm -f "$BIN_DIR/kelp" "$BIN_DIR/kelp-uninstall.sh"
echo "kelp removed"
