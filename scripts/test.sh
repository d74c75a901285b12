#!/usr/bin/env bash
# Runs every test of Strata: Rust unit and integration tests (including the sqllogictest
# suite and the catalog tests on SQLite and on PostgreSQL), then the end-to-end suite against
# the real binary with the real OpenTelemetry SDK, three times:
#
#   e2e local+sqlite     the whole suite on the defaults (data dir objects, SQLite catalog)
#   e2e s3               the round-trip suite (and compaction, retention, back-pressure) with every
#                        node on its own bucket of a moto S3 server
#   e2e postgres         the same files with every node on its own PostgreSQL database
#
# test_s3.py and test_postgres.py run in all three (each names its own storage or catalog,
# so across the runs they also cover S3 + PostgreSQL together).
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh rust       Rust tests only
#   ./scripts/test.sh e2e        end-to-end tests only (builds the binary first)
#   ./scripts/test.sh fuzz       the fuzz targets, STRATA_FUZZ_SECONDS (default 20) each
#
# `all` ends with the fuzz stage (scripts/fuzz.sh: installs cargo-fuzz, builds the targets of
# fuzz/ with the stable toolchain, runs each for a bounded time; docs/FUZZING.md).
#
# Needs: cargo, python3 (3.10+), and Debian's PostgreSQL, Prometheus and Alertmanager
# (installed here with apt-get when missing and running as root). Creates .venv/ for the Python test clients and moto. Starts
# PostgreSQL and moto on free ports of 127.0.0.1 and stops them on exit (scripts/services.sh).
# STRATA_TEST_POSTGRES_URL / STRATA_E2E_S3_ENDPOINT, when already set, are used instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-all}
case $what in
  all | rust | e2e | fuzz) ;;
  *)
    echo "usage: $0 [all|rust|e2e|fuzz]" >&2
    exit 2
    ;;
esac
target_dir=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# The files run again on S3 and on PostgreSQL: the round-trip suite, what flushes, compacts
# and expires files, and the S3 and PostgreSQL tests. test_bad_input.py (request validation,
# no storage involved) and test_crash.py (nodes of its own, on the local directory) run in
# the default run only.
storage_suite=(
  tests/e2e/test_roundtrip_sdk.py
  tests/e2e/test_otlp_json.py
  tests/e2e/test_sql_api.py
  tests/e2e/test_tenancy.py
  tests/e2e/test_auth.py
  tests/e2e/test_audit.py
  tests/e2e/test_backpressure.py
  tests/e2e/test_maintenance.py
  tests/e2e/test_alerting.py
  tests/e2e/test_s3.py
  tests/e2e/test_postgres.py
)

step() { printf '\n==> %s\n' "$*"; }
die() {
  printf '\nerror: %s\n' "$*" >&2
  exit 1
}

started=$SECONDS
summary=()
failed=()
# Runs one stage, timing it; a failed stage is recorded and the next ones still run.
stage() {
  local name=$1 t0=$SECONDS status=0
  shift
  step "$name"
  "$@" || status=$?
  local took=$((SECONDS - t0))
  if [[ $status -eq 0 ]]; then
    summary+=("$(printf 'ok     %4ss  %s' "$took" "$name")")
  else
    summary+=("$(printf 'FAILED %4ss  %s (exit %s)' "$took" "$name" "$status")")
    failed+=("$name")
  fi
  return 0
}

print_summary() {
  step "summary"
  local line
  for line in "${summary[@]}"; do
    echo "  $line"
  done
  echo "  total $((SECONDS - started))s"
}

# ------------------------------------------------------------------ services

svc_dir=
cleanup() {
  if [[ -n $svc_dir ]]; then
    scripts/services.sh stop "$svc_dir/moto" >/dev/null 2>&1 || true
    scripts/services.sh stop "$svc_dir/pg" >/dev/null 2>&1 || true
    rm -rf "$svc_dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_postgres_installed() {
  if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and this is not root:
  install Debian's package (sudo apt-get install -y postgresql), or point the tests at a server
  of yours with STRATA_TEST_POSTGRES_URL=postgres://user@host:port/db (a user that may create
  databases)"
  fi
  step "apt-get install postgresql"
  # The package would start its default cluster on :5432; the tests start their own.
  local no_start=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    no_start=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } ||
    status=$?
  [[ -z $no_start ]] || rm -f /usr/sbin/policy-rc.d
  [[ $status -eq 0 ]] || die "apt-get install postgresql failed"
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || die "postgresql installed but no initdb found"
}

start_services() {
  svc_dir=$(mktemp -d /tmp/strata-test.XXXXXX)
  chmod 755 "$svc_dir" # the postgres user must reach its directory below
  if [[ -z ${STRATA_TEST_POSTGRES_URL:-} ]]; then
    ensure_postgres_installed
    step "start PostgreSQL"
    STRATA_TEST_POSTGRES_URL=$(scripts/services.sh start-postgres 0 "$svc_dir/pg") || die "could not start PostgreSQL"
  fi
  export STRATA_TEST_POSTGRES_URL
  echo "STRATA_TEST_POSTGRES_URL=$STRATA_TEST_POSTGRES_URL"
  if [[ $what != rust && -z ${STRATA_E2E_S3_ENDPOINT:-} ]]; then
    step "start moto (S3)"
    STRATA_E2E_S3_ENDPOINT=$(scripts/services.sh start-moto 0 "$svc_dir/moto") || die "could not start moto"
  fi
  if [[ $what != rust ]]; then
    export STRATA_E2E_S3_ENDPOINT
    echo "STRATA_E2E_S3_ENDPOINT=$STRATA_E2E_S3_ENDPOINT"
  fi
}

# Prometheus (a real rule evaluator sending alerts) and Alertmanager (the reference webhook
# payload) for tests/e2e/test_alerting.py: Debian's packages, installed when missing and root.
ensure_prometheus_installed() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  [[ ${#missing[@]} -gt 0 ]] || return 0
  if [[ $(id -u) -ne 0 ]]; then
    die "${missing[*]} not installed and this is not root: sudo apt-get install -y ${missing[*]}"
  fi
  step "apt-get install ${missing[*]}"
  local no_start=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    no_start=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
    status=$?
  [[ -z $no_start ]] || rm -f /usr/sbin/policy-rc.d
  [[ $status -eq 0 ]] || die "apt-get install ${missing[*]} failed"
}

python_env() {
  if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
}

# ------------------------------------------------------------------ stages

if [[ $what == all || $what == e2e ]]; then
  # moto_server comes from the venv: make it before the services.
  ensure_prometheus_installed
  stage "python test environment (.venv)" python_env
  [[ ${#failed[@]} -eq 0 ]] || {
    print_summary
    die "could not set up .venv"
  }
fi
[[ $what == fuzz ]] || start_services

if [[ $what == all || $what == rust ]]; then
  # The catalog tests' PostgreSQL variants fail without it; it is set above, always.
  [[ -n ${STRATA_TEST_POSTGRES_URL:-} ]] || die "STRATA_TEST_POSTGRES_URL is not set"
  stage "cargo test --workspace" cargo test --workspace --no-fail-fast
fi

if [[ $what == all || $what == e2e ]]; then
  stage "cargo build --bin strata" cargo build -p strata-server --bin strata
  if [[ ! -x $target_dir/debug/strata ]]; then
    print_summary
    die "no strata binary at $target_dir/debug/strata"
  fi
  export STRATA_BIN="$target_dir/debug/strata"
  pytest=(.venv/bin/python -m pytest -q)

  stage "e2e: local storage + SQLite catalog (tests/e2e, all files)" \
    env STRATA_E2E_STORAGE=local STRATA_E2E_CATALOG=sqlite "${pytest[@]}" tests/e2e
  stage "e2e: S3 storage (moto) + SQLite catalog (${#storage_suite[@]} files)" \
    env STRATA_E2E_STORAGE=s3 STRATA_E2E_CATALOG=sqlite "${pytest[@]}" "${storage_suite[@]}"
  stage "e2e: local storage + PostgreSQL catalog (${#storage_suite[@]} files)" \
    env STRATA_E2E_STORAGE=local STRATA_E2E_CATALOG=postgres "${pytest[@]}" "${storage_suite[@]}"
fi

if [[ $what == all || $what == fuzz ]]; then
  stage "fuzz: every target ${STRATA_FUZZ_SECONDS:-20}s (scripts/fuzz.sh)" \
    ./scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-20}"
fi

print_summary
if [[ ${#failed[@]} -gt 0 ]]; then
  die "${#failed[@]} stage(s) failed: ${failed[*]}"
fi
step "all tests passed"
