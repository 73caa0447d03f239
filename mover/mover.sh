#!/bin/sh
# The data mover: rsync over TLS (stunnel, pre-shared key), VolSync's model.
#
#   mover.sh target   serves /data: stunnel on $MOVER_PORT (TLS with the key in
#                     $MOVER_KEY_FILE) starts an rsync daemon per connection, on its
#                     stdin/stdout (nothing else listens); exits 0 once the source
#                     has marked the copy complete.
#   mover.sh source   copies /data to the target at $MOVER_TARGET (host:port) through
#                     a local stunnel client; retries until the copy completes, then
#                     marks it complete on the target; exits 0.
#
# Resumable: a file cut short stays in .mover-partial/ on the target (never in
# place, where it would look complete) and is the delta basis of the next attempt;
# finished files are skipped by size and time. Progress goes to stdout as rsync's
# `--info=progress2` lines (one per update); the end as its `--stats`.
#
# Runs as any non-root uid with a read-only root filesystem: it writes only in
# $TMPDIR (an emptyDir) and /data. The key file holds `<identity>:<key>` (one line,
# the key at least 32 hex digits); it is the only credential, per operation.
set -eu

role=${1:?usage: mover.sh target|source}
port=${MOVER_PORT:-8000}
key=${MOVER_KEY_FILE:-/keys/psk.txt}
data=${MOVER_DATA:-/data}
work=${TMPDIR:-/tmp}/mover
retries=${MOVER_RETRIES:-20}
mkdir -p "$work"

log() { echo "mover: $*" >&2; }

[ -r "$key" ] || { log "no key file at $key"; exit 2; }

# stunnel in the foreground (its log on stderr, no pid file: a read-only root), one
# service, TLS with a pre-shared key: no certificates, both ends authenticated by it.
tunnel_options() {
  cat <<CONF
foreground = yes
pid =
syslog = no
debug = notice
socket = l:SO_KEEPALIVE=1
socket = r:SO_KEEPALIVE=1
[rsync]
ciphers = PSK
sslVersionMin = TLSv1.2
PSKsecrets = $key
CONF
}

case "$role" in
target)
  mkdir -p "$work/control"
  rm -f "$work/control/done"
  cat >"$work/rsyncd.conf" <<CONF
use chroot = no
munge symlinks = no
numeric ids = yes
log file = /dev/stderr
[data]
  path = $data
  read only = no
  list = no
[control]
  path = $work/control
  read only = no
  list = no
CONF
  cat >"$work/stunnel.conf" <<CONF
$(tunnel_options)
accept = $port
client = no
exec = /usr/bin/rsync
execArgs = rsync --server --daemon --config=$work/rsyncd.conf .
CONF
  stunnel "$work/stunnel.conf" &
  tunnel=$!
  trap 'kill $tunnel 2>/dev/null || true' EXIT
  trap 'exit 143' INT TERM
  log "target: serving $data on port $port"
  while [ ! -e "$work/control/done" ]; do
    kill -0 "$tunnel" 2>/dev/null || { log "stunnel exited"; exit 1; }
    sleep 1
  done
  log "target: the source marked the copy complete"
  ;;
source)
  target=${MOVER_TARGET:?MOVER_TARGET=host:port of the target}
  local_port=${MOVER_LOCAL_PORT:-8873}
  cat >"$work/stunnel.conf" <<CONF
$(tunnel_options)
accept = 127.0.0.1:$local_port
client = yes
connect = $target
CONF
  stunnel "$work/stunnel.conf" &
  tunnel=$!
  trap 'kill $tunnel 2>/dev/null || true' EXIT
  trap 'exit 143' INT TERM
  # rsync's first attempt only once the tunnel listens (perl-base is in every Debian).
  for _ in $(seq 50); do
    perl -MIO::Socket::INET -e 'exit !IO::Socket::INET->new(shift)' "127.0.0.1:$local_port" && break
    sleep 0.1
  done
  # Owner and group stay the target's (a non-root receiver cannot set them; the
  # target pod's fsGroup owns its volume). Hard links, sparse files, and deletes
  # (a resumed copy's leftovers of files gone since) are kept exact.
  set -- --archive --no-owner --no-group --hard-links --sparse --numeric-ids --delete \
    --partial-dir=.mover-partial --no-inc-recursive --info=progress2 --stats \
    --timeout="${MOVER_IO_TIMEOUT:-60}" ${MOVER_BWLIMIT:+--bwlimit=$MOVER_BWLIMIT}
  attempt=1
  while :; do
    # One line per progress update (rsync rewrites its line with carriage returns, and
    # container logs are read by line), each written at once.
    { rsync --outbuf=N "$@" "$data/" "rsync://127.0.0.1:$local_port/data/"; echo $? >"$work/status"; } |
      stdbuf -oL tr '\r' '\n'
    status=$(cat "$work/status")
    [ "$status" = 0 ] && break
    [ "$attempt" -lt "$retries" ] || { log "source: giving up after $attempt attempts"; exit "$status"; }
    log "source: attempt $attempt ended with rsync status $status; resuming in 2 s"
    attempt=$((attempt + 1))
    sleep 2
  done
  : >"$work/done"
  rsync --timeout=30 "$work/done" "rsync://127.0.0.1:$local_port/control/done"
  log "source: copy complete after $attempt attempt(s)"
  ;;
*)
  log "unknown role $role (target or source)"
  exit 2
  ;;
esac
