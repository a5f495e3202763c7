#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian bookworm machine: the real
# Incus client and daemon (bookworm-backports), the LXD client,
# squashfs-tools, xz-utils, xdelta3, curl, the benchmark peers (rclone, nginx,
# Caddy, wrk), chromium (the catalog page test), nghttp2-client (a real
# stalled HTTP/2 client), the VM disk tools and QEMU with OVMF, gpgv and
# Debian's own python3 (the reference SimpleStreams client checks signed
# streams with them; /usr/bin/python3, whatever else is first on PATH),
# and distrobuilder (scripts/install-distrobuilder.sh).
# Idempotent and quick when everything is there; run as root (or with
# passwordless sudo). Otherwise it says in one line what is missing and
# how to get it, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export PATH="$PATH:/usr/sbin:/sbin"

# command:package, and which suite the package comes from.
backports=(incus:incus-client /usr/libexec/incus/incusd:incus-base dnsmasq:dnsmasq-base incus-simplestreams:incus-extra)
bookworm=(lxc:lxd-client mksquashfs:squashfs-tools xz:xz-utils curl:curl rclone:rclone nginx:nginx-light caddy:caddy wrk:wrk
	stress-ng:stress-ng xdelta3:xdelta3 chromium:chromium nghttp:nghttp2-client unsquashfs:squashfs-tools flock:util-linux
	qemu-img:qemu-utils sgdisk:gdisk mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs
	qemu-system-x86_64:qemu-system-x86 /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf
	gpgv:gpgv /usr/bin/python3:python3)
missing() {
	for t in "$@"; do command -v "${t%%:*}" >/dev/null || [ -f "${t%%:*}" ] || echo "${t#*:}"; done
}
need_bp=($(missing "${backports[@]}"))
need=($(missing "${bookworm[@]}"))

if [ ${#need_bp[@]} -gt 0 ] || [ ${#need[@]} -gt 0 ]; then
	if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
		echo "install-deps: missing ${need_bp[*]} ${need[*]}: run \`sudo make deps\` (or scripts/install-deps.sh as root) once" >&2
		exit 1
	fi
	if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "install-deps: adding the bookworm-backports suite"
		$SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	fi
	echo "install-deps: installing ${need_bp[*]} ${need[*]}"
	$SUDO apt-get update -q
	export DEBIAN_FRONTEND=noninteractive
	if [ ${#need_bp[@]} -gt 0 ]; then
		$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${need_bp[@]}"
	fi
	if [ ${#need[@]} -gt 0 ]; then
		$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
	fi
else
	echo "install-deps: Debian packages already present"
fi
scripts/install-distrobuilder.sh
incus --version
