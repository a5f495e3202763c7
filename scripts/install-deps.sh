#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian bookworm machine: the real
# Incus client (bookworm-backports), the LXD client, squashfs-tools and
# xz-utils. Idempotent; run as root (or with sudo available).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
command -v incus >/dev/null || need+=(incus-client)
command -v lxc >/dev/null || need+=(lxd-client)
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
command -v xz >/dev/null || need+=(xz-utils)
command -v rclone >/dev/null || need+=(rclone) # bench/ compares against it
command -v curl >/dev/null || need+=(curl)
for t in nginx:nginx-light caddy:caddy wrk:wrk; do PATH="$PATH:/usr/sbin" command -v "${t%%:*}" >/dev/null || need+=("${t#*:}"); done # bench/edgeproxy
if [ ${#need[@]} -eq 0 ]; then
	echo "install-deps: incus, lxc, mksquashfs, xz, rclone and curl already present"
	exit 0
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
echo "install-deps: installing ${need[*]}"
$SUDO apt-get update -q
export DEBIAN_FRONTEND=noninteractive
for p in "${need[@]}"; do
	case "$p" in
	incus-client) $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports incus-client ;;
	*) $SUDO apt-get install -y -q --no-install-recommends "$p" ;;
	esac
done
incus --version
