#!/usr/bin/env bash
# Starts and stops the real services the tests use: an S3 server (moto, in server mode) and a
# PostgreSQL server (Debian's package). Installs nothing: `./scripts/test.sh` installs
# PostgreSQL (apt) and moto (the venv, tests/e2e/requirements.txt) before it calls this.
#
#   scripts/services.sh free-port                print a free TCP port of 127.0.0.1
#   scripts/services.sh start-moto PORT DIR      moto_server on 127.0.0.1:PORT; pid and log in DIR
#   scripts/services.sh start-postgres PORT DIR  PostgreSQL on 127.0.0.1:PORT, cluster and socket in
#                                                DIR, trust auth, user `postgres`, database `strata`
#   scripts/services.sh stop-moto DIR            stop what start-moto started in DIR
#   scripts/services.sh stop-postgres DIR        stop what start-postgres started in DIR
#   scripts/services.sh stop DIR                 both (whatever of them runs in DIR)
#
# PORT 0 picks a free port. Each start prints the service's URL on stdout and returns once
# it answers:
#   start-moto      http://127.0.0.1:PORT
#   start-postgres  postgres://postgres@127.0.0.1:PORT/strata
# Logs go to DIR/moto.log and DIR/postgres.log. Callers stop what they start (a trap in
# ./scripts/test.sh; a fixture finalizer in tests/e2e). Sourcing the script defines the same
# commands as functions (svc_start_moto ...) without running anything.
#
# As root, PostgreSQL runs as the `postgres` user (initdb refuses root): DIR must then be
# reachable by that user, i.e. its parent directories world-executable (mktemp -d makes a
# 0700 directory: chmod 755 it, or use a subdirectory of one that is).
# Environment: STRATA_VENV (default <repo>/.venv) for moto_server; PG_BIN (default: the newest
# /usr/lib/postgresql/*/bin) for initdb and pg_ctl.

svc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

svc_die() {
  echo "services.sh: $*" >&2
  return 1
}

svc_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until 127.0.0.1:PORT accepts connections, or gives up after SECONDS.
svc_wait_port() {
  local port=$1 seconds=$2 pid=${3:-} i
  for ((i = 0; i < seconds * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

svc_pg_bin() {
  if [[ -n ${PG_BIN:-} ]]; then
    echo "$PG_BIN"
    return
  fi
  local initdb
  initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
  [[ -x $initdb ]] || initdb=
  [[ -n $initdb ]] || svc_die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); apt-get install -y postgresql" || return 1
  dirname "$initdb"
}

# Runs a command as the postgres user when root (initdb and postgres refuse root), else as is.
svc_as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

svc_start_moto() {
  local port=${1:?start-moto PORT DIR} dir=${2:?start-moto PORT DIR}
  local venv=${STRATA_VENV:-$svc_root/.venv}
  local moto=$venv/bin/moto_server
  [[ -x $moto ]] || svc_die "$moto not found: install moto[server] into the venv (pip install -r tests/e2e/requirements.txt)" || return 1
  [[ $port != 0 ]] || port=$(svc_free_port)
  mkdir -p "$dir"
  if [[ -f $dir/moto.pid ]] && kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null; then
    svc_die "moto already runs from $dir (pid $(cat "$dir/moto.pid"))" || return 1
  fi
  "$moto" -H 127.0.0.1 -p "$port" </dev/null >"$dir/moto.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/moto.pid"
  echo "$port" >"$dir/moto.port"
  if ! svc_wait_port "$port" 60 "$pid"; then
    tail -n 20 "$dir/moto.log" >&2
    svc_stop_moto "$dir"
    svc_die "moto did not start on 127.0.0.1:$port (log: $dir/moto.log)" || return 1
  fi
  echo "http://127.0.0.1:$port"
}

svc_stop_moto() {
  local dir=${1:?stop-moto DIR} pid i
  [[ -f $dir/moto.pid ]] || return 0
  pid=$(cat "$dir/moto.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/moto.pid"
}

svc_start_postgres() {
  local port=${1:?start-postgres PORT DIR} dir=${2:?start-postgres PORT DIR}
  local bin
  bin=$(svc_pg_bin) || return 1
  [[ $port != 0 ]] || port=$(svc_free_port)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || svc_die "no postgres user: is Debian's postgresql package installed?" || return 1
    chown postgres: "$dir"
    chmod 700 "$dir"
    runuser -u postgres -- test -w "$dir" ||
      svc_die "$dir is not writable by the postgres user: its parent directories must be world-executable" || return 1
  fi
  if [[ -f $dir/data/postmaster.pid ]]; then
    svc_die "PostgreSQL already runs from $dir/data" || return 1
  fi
  svc_as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; svc_die "initdb failed (log: $dir/initdb.log)"; return 1; }
  echo "$port" >"$dir/postgres.port"
  # A throwaway test server: no fsync (CREATE DATABASE per test node stays fast), room for
  # the connection pools of many nodes and parallel Rust tests.
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400"
  opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if ! svc_as_pg "$bin/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/postgres.log" -w -t 60 start >"$dir/pg_ctl.log" 2>&1; then
    cat "$dir/pg_ctl.log" >&2
    tail -n 20 "$dir/postgres.log" >&2 2>/dev/null
    svc_stop_postgres "$dir"
    svc_die "PostgreSQL did not start on 127.0.0.1:$port (log: $dir/postgres.log)" || return 1
  fi
  psql -X -q -v ON_ERROR_STOP=1 "postgres://postgres@127.0.0.1:$port/postgres" -c 'CREATE DATABASE strata' >/dev/null ||
    { svc_stop_postgres "$dir"; svc_die "could not create the database strata"; return 1; }
  echo "postgres://postgres@127.0.0.1:$port/strata"
}

svc_stop_postgres() {
  local dir=${1:?stop-postgres DIR} bin pid i
  [[ -f $dir/data/postmaster.pid ]] || return 0
  bin=$(svc_pg_bin) || return 1
  if ! svc_as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
    # Last resort: the postmaster by the pid it wrote.
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
    if [[ -n $pid ]]; then
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "$dir/data/postmaster.pid"
  fi
}

svc_stop() {
  local dir=${1:?stop DIR}
  svc_stop_moto "$dir"
  svc_stop_postgres "$dir"
}

# Run as a command unless sourced.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  cmd=${1:-}
  shift || true
  case $cmd in
    free-port) svc_free_port ;;
    start-moto) svc_start_moto "$@" ;;
    stop-moto) svc_stop_moto "$@" ;;
    start-postgres) svc_start_postgres "$@" ;;
    stop-postgres) svc_stop_postgres "$@" ;;
    stop) svc_stop "$@" ;;
    *)
      sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
fi
