#!/usr/bin/env bash
# Lets an amd64 host build arm64 appliances: installs qemu-user-static and
# registers its aarch64 handler with binfmt_misc by hand (these machines run
# no systemd-binfmt). Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
command -v qemu-aarch64-static >/dev/null || apt-get install -y -q --no-install-recommends qemu-user-static
grep -qs binfmt_misc /proc/mounts || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
	grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | head -n1 > /proc/sys/fs/binfmt_misc/register
fi
echo "setup-binfmt: $(head -n1 /proc/sys/fs/binfmt_misc/qemu-aarch64) (aarch64 binaries run through qemu)"
