#!/usr/bin/env bash
# Starts and stops a throw-away Incus daemon for the launch tests (no
# systemd on these machines): containers only, a dir storage pool and a
# fixed bridge. `stop` leaves no process, bridge, nftables table or state.
#
#   scripts/incus-daemon.sh start
#   scripts/incus-daemon.sh stop
set -euo pipefail
BRIDGE_ADDR="${INCUS_TEST_BRIDGE:-10.201.7.1/24}"

# detached runs a daemon in a session of its own with no descriptor of
# ours but stdin, stdout and stderr: a daemon inheriting the caller's
# `flock /tmp/incusd.lock` descriptor would hold the lock after a killed
# test, blocking every other daemon target on the host.
detached() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -le 2 ] || eval "exec $fd>&-"
		done
		exec setsid "$@"
	) &
}

start() {
	if ! command -v /usr/libexec/incus/incusd >/dev/null; then
		echo "incus-daemon: incusd missing: apt-get install -t bookworm-backports incus-base dnsmasq-base" >&2
		exit 1
	fi
	if /usr/libexec/incus/incusd waitready --timeout=1 >/dev/null 2>&1; then
		echo "incus-daemon: already running" >&2
		return
	fi
	getent group incus-admin >/dev/null || groupadd --system incus-admin
	mkdir -p /var/log/incus
	if command -v lxcfs >/dev/null && ! pgrep -x lxcfs >/dev/null; then
		mkdir -p /var/lib/lxcfs
		detached lxcfs /var/lib/lxcfs >/var/log/incus/lxcfs.log 2>&1 </dev/null
	fi
	detached /usr/libexec/incus/incusd --group incus-admin --logfile=/var/log/incus/incus.log >/var/log/incus/incusd.out 2>&1 </dev/null
	/usr/libexec/incus/incusd waitready --timeout=60
	incus admin init --preseed <<PRESEED
networks:
- name: incusbr0
  type: bridge
  config:
    ipv4.address: $BRIDGE_ADDR
    ipv4.nat: "false"
    ipv6.address: none
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: {path: /, pool: default, type: disk}
    eth0: {name: eth0, network: incusbr0, type: nic}
PRESEED
	echo "incus-daemon: ready (bridge incusbr0 $BRIDGE_ADDR)"
}

stop() {
	if /usr/libexec/incus/incusd waitready --timeout=2 >/dev/null 2>&1; then
		for i in $(incus list --format csv --columns n 2>/dev/null); do
			incus delete --force "$i" || true
		done
		incus admin shutdown --timeout 60 || true
	fi
	pkill -x incusd 2>/dev/null || true
	pkill -f '/usr/libexec/incus/incusd' 2>/dev/null || true
	pkill -x lxcfs 2>/dev/null || true
	sleep 1
	pkill -9 -f '/usr/libexec/incus/incusd' 2>/dev/null || true
	pkill -9 -f 'dnsmasq.*incusbr0' 2>/dev/null || true
	ip link delete incusbr0 2>/dev/null || true
	nft delete table inet incus 2>/dev/null || true
	grep -q ' /var/lib/lxcfs ' /proc/mounts && umount -l /var/lib/lxcfs || true
	for m in $(awk '$2 ~ "^/var/lib/incus" {print $2}' /proc/mounts | sort -r); do umount -l "$m" || true; done
	rm -rf /var/lib/incus /var/cache/incus /var/log/incus /run/incus
	find /sys/fs/cgroup -maxdepth 2 -type d -name 'lxc.*' -empty -delete 2>/dev/null || true
	echo "incus-daemon: stopped and cleaned"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
