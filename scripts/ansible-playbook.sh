#!/usr/bin/env bash
# Runs ansible-playbook from the Debian 13 root that
# scripts/install-ansible.sh made, against this host's Incus daemon: in a
# mount namespace of its own (nothing to clean up after), the root gets
# /proc, /dev, /tmp and the repository at their own paths and the daemon's
# socket (INCUS_SOCKET, default /var/lib/incus/unix.socket); INCUS_CONF
# (the client's configuration: remotes, pinned certificates) and ANSIBLE_*
# pass through. Arguments go to ansible-playbook, run in the current
# folder.
#   scripts/ansible-playbook.sh ansible/stack.yml -e @ansible/stacks/rss.yml
set -euo pipefail
root="${XDG_CACHE_HOME:-$HOME/.cache}/appliance-registry/ansible-trixie"
repo=$(cd "$(dirname "$0")/.." && pwd)
socket="${INCUS_SOCKET:-/var/lib/incus/unix.socket}"
if [ ! -f "$root/.complete" ]; then
	echo "ansible-playbook.sh: no Ansible root in $root: run scripts/install-ansible.sh first" >&2
	exit 1
fi
if [ ! -S "$socket" ]; then
	echo "ansible-playbook.sh: no Incus daemon socket at $socket (start one: scripts/incus-daemon.sh start)" >&2
	exit 1
fi
env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 INCUS_SOCKET=/run/host-incus.socket)
[ -z "${INCUS_CONF:-}" ] || env+=("INCUS_CONF=$INCUS_CONF")
while IFS= read -r v; do env+=("$v"); done < <(env | grep '^ANSIBLE_' || true)
exec unshare --mount --propagation private -- bash -euc '
	root=$1 repo=$2 socket=$3 cwd=$4
	shift 4
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	mount --bind /tmp "$root/tmp"
	case "$repo/" in
	/tmp/*) ;;
	*) mkdir -p "$root$repo" && mount --bind "$repo" "$root$repo" ;;
	esac
	touch "$root/run/host-incus.socket"
	mount --bind "$socket" "$root/run/host-incus.socket"
	n=$1
	shift
	exec chroot "$root" /usr/bin/env -i "${@:1:$n}" sh -c "cd \"\$0\" && exec ansible-playbook \"\$@\"" "$cwd" "${@:$((n + 1))}"
' sh "$root" "$repo" "$socket" "$(pwd)" "${#env[@]}" "${env[@]}" "$@"
