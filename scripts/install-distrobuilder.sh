#!/usr/bin/env bash
# Installs distrobuilder 3.2 (the Debian trixie package; the Go module proxy
# refuses distrobuilder) with debootstrap and squashfs-tools from bookworm,
# using a private APT configuration so the system's sources stay untouched.
# Idempotent; run as root (or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
WANT="3.2"
if command -v distrobuilder >/dev/null && distrobuilder --version 2>/dev/null | grep -q "^$WANT"; then
	echo "install-distrobuilder: distrobuilder $(distrobuilder --version) already present"
	exit 0
fi
if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
	echo "install-distrobuilder: distrobuilder $WANT is missing: run \`sudo scripts/install-distrobuilder.sh\` once" >&2
	exit 1
fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/appliance-registry/apt-trixie"
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
cat >"$dir/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
cat >"$dir/apt.conf" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
Dir::State::status "/var/lib/dpkg/status";
CONF
export APT_CONFIG="$dir/apt.conf"
apt-get update -q
(cd "$dir/debs" && rm -f ./*.deb && apt-get download distrobuilder distrobuilder-images)
unset APT_CONFIG
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "$dir"/debs/distrobuilder_*.deb "$dir"/debs/distrobuilder-images_*.deb \
	debootstrap squashfs-tools xz-utils rsync gpg
distrobuilder --version
