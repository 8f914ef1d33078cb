# shellcheck shell=bash disable=SC2034
# Shared helpers of the bench/ scripts: `source bench/lib.sh` from the repository root.
# Everything a script starts is registered here and stopped by `bench_cleanup` (run on EXIT once
# `bench_workdir` has been called): servers by their pid, PostgreSQL clusters by `pg_ctl stop`, and
# the work directory is removed (kept when BENCH_KEEP is set, to look at after a failure).

S3FS=${BTAR_S3_SERVER:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
S3_ACCESS_KEY=benchkey
S3_SECRET_KEY=benchsecretkey
_BENCH_PIDS=()
_BENCH_PGDIRS=()

# Builds the release binary (cargo waits on the lock if someone else is building) and sets $BTAR;
# BTAR_BIN=/path/to/btar skips the build.
# BTAR_PROFILE=debug uses the debug build instead (CI's smoke run: `cargo test` has just built it,
# and a release build would cost CI ten minutes on two cores).
btar_build() {
  if [ -n "${BTAR_BIN:-}" ]; then
    # A binary of the caller's choosing, e.g. a copy that a rebuild during a long run cannot change.
    BTAR=$BTAR_BIN
  elif [ "${BTAR_PROFILE:-release}" = debug ]; then
    cargo build -q -p btar
    BTAR=$PWD/target/debug/btar
  else
    cargo build --release -q -p btar
    BTAR=$PWD/target/release/btar
  fi
}

# PostgreSQL runs as `postgres` when we are root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # PORT [SECONDS]
  local i
  for ((i = 0; i < ${2:-15} * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# Creates $WORK (mktemp, prefix $1), readable by postgres, removed on exit with everything started.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/${1:-btar-bench}-XXXX")
  chmod 755 "$WORK"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; fi
  trap bench_cleanup EXIT
}

bench_register_pid() { _BENCH_PIDS+=("$1"); }
bench_register_pgdir() { _BENCH_PGDIRS+=("$1"); }

bench_cleanup() {
  local d p
  set +e
  trap - ERR
  for d in "${_BENCH_PGDIRS[@]}"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1
  done
  # A registered pid may be a wrapper (runuser, time) of the process to stop: its descendants first.
  for p in "${_BENCH_PIDS[@]}"; do
    for d in $(descendants_named "$p" ""); do kill "$d" 2>/dev/null; done
    kill "$p" 2>/dev/null
  done
  for p in "${_BENCH_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "${BENCH_KEEP:-}" ]; then echo "# BENCH_KEEP: $WORK kept" >&2; elif [ -n "${WORK:-}" ]; then rm -rf "$WORK"; fi
  return 0
}

# s3s-fs (hyper) does not set TCP_NODELAY on the sockets it accepts, so the tail of a response waits
# for the client's delayed ACK: ~40 ms stalls per object on loopback, which swamp every tool that
# fetches objects one after another (pgBackRest's restore went from 11.6 s to 1.4 s on 38 MB without
# them). S3 front ends do not behave so. With S3_NODELAY=1, s3s-fs runs with a 10-line LD_PRELOAD
# shim that sets TCP_NODELAY on each accepted socket (needs cc; S3_NODELAY_ACTIVE says if it is on).
s3_nodelay_shim() {
  local so=$WORK/nodelay.so
  [ -f "$so" ] && { echo "$so"; return; }
  command -v cc >/dev/null || return 1
  cat > "$WORK/nodelay.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static int nodelay(int fd) { int one = 1; if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); return fd; }
int accept(int s, struct sockaddr *a, socklen_t *l) {
  static int (*real)(int, struct sockaddr *, socklen_t *);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
  return nodelay(real(s, a, l));
}
int accept4(int s, struct sockaddr *a, socklen_t *l, int f) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
  return nodelay(real(s, a, l, f));
}
C
  cc -shared -fPIC -O2 -o "$so" "$WORK/nodelay.c" -ldl && echo "$so"
}

# Starts s3s-fs over directory $1 on a free loopback port; sets S3PORT and S3ROOT. Buckets are
# directories: `mkdir "$S3ROOT/NAME"`.
s3_start() {
  S3ROOT=$1
  mkdir -p "$S3ROOT"
  S3PORT=$(free_port)
  local preload=""
  S3_NODELAY_ACTIVE=0
  if [ "${S3_NODELAY:-0}" = 1 ]; then
    if preload=$(s3_nodelay_shim); then S3_NODELAY_ACTIVE=1; else preload=""; echo "# no cc: s3s-fs runs without TCP_NODELAY" >&2; fi
  fi
  LD_PRELOAD=$preload "$S3FS" --host 127.0.0.1 --port "$S3PORT" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$S3ROOT" >/dev/null 2>&1 &
  bench_register_pid $!
  wait_port "$S3PORT"
}

# btar's region options for the S3 server at endpoint $1 (http://… or https://…).
s3_region_options() {
  local extra=""
  case $1 in https:*) extra=', aws_allow_invalid_certificates = "true"' ;; esac
  printf '{ aws_endpoint = "%s", aws_allow_http = "true", aws_access_key_id = "%s", aws_secret_access_key = "%s", aws_region = "us-east-1", aws_virtual_hosted_style_request = "false"%s }' \
    "$1" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$extra"
}

# initdb + postgresql.conf lines from stdin + start. Usage: pg_create DIR PORT <<CONF ... CONF
pg_create() {
  local dir=$1 port=$2
  as_pg "$PGBIN/initdb" -D "$dir" -A trust -U postgres >/dev/null
  {
    printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$port" "$(dirname "$dir")"
    cat
  } | as_pg tee -a "$dir/postgresql.conf" >/dev/null
  bench_register_pgdir "$dir"
  as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w start >/dev/null
}

# A TLS endpoint in front of 127.0.0.1:$1 (stunnel, self-signed certificate for 127.0.0.1); sets
# TLSPORT. pgBackRest speaks S3 only over TLS, so every tool reaches s3s-fs through this.
tls_start() {
  local dir=$WORK/tls
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
  TLSPORT=$(free_port)
  cat > "$dir/stunnel.conf" <<CONF
foreground = yes
pid =
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[s3]
accept = 127.0.0.1:$TLSPORT
connect = 127.0.0.1:$1
cert = $dir/cert.pem
key = $dir/key.pem
CONF
  stunnel "$dir/stunnel.conf" >"$dir/stunnel.log" 2>&1 &
  bench_register_pid $!
  wait_port "$TLSPORT"
}

# s3s-fs keeps an object's ETag in a sidecar file written apart from the object, so when two PUTs of
# one key race (btar's backup writer does, for a chunk that occurs twice among the chunks in flight,
# each sealed with its own nonce) it can keep the bytes of one PUT and the ETag of the other. Real S3
# replaces both at once. s3_repair_etags BUCKET [PREFIX] rewrites such stale ETags to the MD5 of the
# stored bytes, so clients that check ETags (rclone) see what S3 would show; prints how many.
s3_repair_etags() {
  python3 - "$S3ROOT" "$1" "${2:-}" <<'PY'
import base64, hashlib, json, os, sys
root, bucket, prefix = sys.argv[1:4]
enc = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
fixed = 0
base = os.path.join(root, bucket)
for d, _, files in os.walk(os.path.join(base, prefix)):
    for f in files:
        path = os.path.join(d, f)
        key = os.path.relpath(path, base)
        side = os.path.join(root, ".bucket-%s.object-%s.internal.json" % (enc(bucket), enc(key)))
        if not os.path.exists(side):
            continue
        info = json.load(open(side))
        md5 = hashlib.md5(open(path, "rb").read()).hexdigest()
        if info.get("e_tag") not in (None, md5):
            info["e_tag"] = md5
            json.dump(info, open(side, "w"))
            fixed += 1
print(fixed)
PY
}

# Pids of the descendants of $1 whose command name is $2 (all of them when $2 is empty), deepest last.
descendants_named() {
  local c
  for c in $(pgrep -P "$1" || true); do
    if [ -z "$2" ] || [ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$2" ]; then echo "$c"; fi
    descendants_named "$c" "$2"
  done
}
