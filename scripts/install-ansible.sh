#!/usr/bin/env bash
# Installs the real Ansible of Debian 13 (ansible 12 with community.general
# and its incus connection plugin, ansible-core 2.19) and Debian 13's Incus
# client into a debootstrapped trixie root kept in the cache, the host's
# system untouched (scripts/install-distrobuilder.sh does the same with a
# private APT configuration). scripts/ansible-playbook.sh runs a play in
# it against the host's Incus daemon.
# Idempotent: quick when the root is there with the pinned versions. The
# root is made beside its final place and renamed when complete, so an
# interrupted install leaves nothing half made. Run as root.
set -euo pipefail
ANSIBLE_VERSION="12.*"      # the ansible package: the collections
ANSIBLE_CORE_VERSION="2.19.*"
root="${XDG_CACHE_HOME:-$HOME/.cache}/appliance-registry/ansible-trixie"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

versions() {
	chroot "$1" dpkg-query -W -f '${Package} ${Version}\n' ansible ansible-core incus-client 2>/dev/null
}
pinned() {
	local v
	v=$(versions "$1") || return 1
	# shellcheck disable=SC2053
	[[ $(awk '$1 == "ansible" {print $2}' <<<"$v") == $ANSIBLE_VERSION ]] &&
		[[ $(awk '$1 == "ansible-core" {print $2}' <<<"$v") == $ANSIBLE_CORE_VERSION ]] &&
		grep -q '^incus-client ' <<<"$v"
}
if [ -f "$root/.complete" ] && pinned "$root"; then
	echo "install-ansible: $(versions "$root" | tr '\n' ' ')already in $root"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-ansible: Ansible of Debian 13 is missing: run \`sudo scripts/install-ansible.sh\` once" >&2
	exit 1
fi
if ! command -v debootstrap >/dev/null || [ ! -e /usr/share/debootstrap/scripts/trixie ]; then
	echo "install-ansible: debootstrap with trixie is missing: run scripts/install-distrobuilder.sh (or apt-get install debootstrap)" >&2
	exit 1
fi

new="$root.new"
rm -rf "$new"
mkdir -p "$(dirname "$root")"
echo "install-ansible: debootstrap trixie into $new"
debootstrap --variant=minbase --include=ca-certificates trixie "$new" "$mirror" >"$new.log" 2>&1 ||
	{ tail -20 "$new.log" >&2; exit 1; }
cat >"$new/etc/apt/sources.list" <<SRC
deb $mirror trixie main
deb $mirror trixie-updates main
deb http://deb.debian.org/debian-security trixie-security main
SRC
cat >"$new/etc/apt/preferences.d/ansible" <<PIN
# The versions the stack play is tested with.
Package: ansible
Pin: version $ANSIBLE_VERSION
Pin-Priority: 1001

Package: ansible-core
Pin: version $ANSIBLE_CORE_VERSION
Pin-Priority: 1001
PIN
# In a mount namespace of its own: /proc and /dev for the package
# scripts, gone with it.
unshare --mount --propagation private -- sh -euc '
	mount -t proc proc "$1/proc"
	mount --rbind /dev "$1/dev"
	chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -euc "
		apt-get update -q
		apt-get install -y -q --no-install-recommends ansible ansible-core incus-client python3
		apt-get clean
	"
' sh "$new" >>"$new.log" 2>&1 || { tail -20 "$new.log" >&2; exit 1; }
pinned "$new" || { echo "install-ansible: the versions installed are not the pinned ones ($ANSIBLE_VERSION, $ANSIBLE_CORE_VERSION): $(versions "$new" | tr '\n' ' ')" >&2; exit 1; }
versions "$new" >"$new/.complete"
rm -rf "$root" "$new.log"
mv "$new" "$root"
echo "install-ansible: $(tr '\n' ' ' <"$root/.complete")in $root"
