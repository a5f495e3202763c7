#!/usr/bin/env bash
# MinIO for tests and local use, pinned and built from the Go module proxy
# once (the binary is cached), started on 127.0.0.1 with a temp data dir and
# random credentials.
#
#   scripts/minio.sh install            build (once) and print the binary path
#   scripts/minio.sh start DIR [BUCKET] start in the background, create BUCKET
#                                       (default "registry"), write DIR/env and print it
#   scripts/minio.sh stop DIR           stop it and remove DIR
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c # github.com/minio/minio, 2026-02-12
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/appliance-registry/minio-$MINIO_VERSION"
export PATH="/usr/local/go/bin:$PATH"

install() {
	if [ ! -x "$CACHE/minio" ]; then
		echo "minio.sh: building MinIO $MINIO_VERSION (once, takes a few minutes)..." >&2
		mkdir -p "$CACHE"
		GOBIN="$CACHE" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION" >&2
	fi
	echo "$CACHE/minio"
}

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
	local dir="$1" bucket="${2:-registry}" bin port user pass
	bin="$(install)"
	mkdir -p "$dir/data"
	dir="$(cd "$dir" && pwd)"
	port="$(freeport)"
	user="minio-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	pass="$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
	MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$pass" MINIO_BROWSER=off \
		setsid "$bin" server "$dir/data" --address "127.0.0.1:$port" --console-address "127.0.0.1:$(freeport)" --quiet \
		>"$dir/minio.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	# Ready = the ready endpoint answers and a first bucket call succeeds
	# (MinIO says "Server not initialized yet" for a while after its
	# endpoints come up); polled for up to 3 minutes on a busy machine.
	local deadline=$((SECONDS + 180)) ok=""
	while [ $SECONDS -lt $deadline ]; do
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
		if curl -fsS "http://127.0.0.1:$port/minio/health/ready" >/dev/null 2>&1; then
			# 200 created, 409 already ours (a restart on the same data)
			case "$(curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$user:$pass" -X PUT "http://127.0.0.1:$port/$bucket" 2>/dev/null)" in
			200 | 409) ok=1 && break ;;
			esac
		fi
		sleep 0.2
	done
	[ -n "$ok" ] || { echo "minio.sh: MinIO did not become ready, see $dir/minio.log" >&2; exit 1; }
	cat >"$dir/env" <<ENV
export MINIO_BIN=$bin
export AWS_ACCESS_KEY_ID=$user
export AWS_SECRET_ACCESS_KEY=$pass
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export REGISTRY_TEST_BUCKET=$bucket
ENV
	cat "$dir/env"
}

stop() {
	local dir="$1"
	if [ -f "$dir/pid" ]; then
		local pid
		pid="$(cat "$dir/pid")"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}

case "${1:-}" in
install) install ;;
start) start "${2:?usage: minio.sh start DIR [BUCKET]}" "${3:-}" ;;
stop) stop "${2:?usage: minio.sh stop DIR}" ;;
*) echo "usage: $0 install | start DIR [BUCKET] | stop DIR" >&2; exit 2 ;;
esac
