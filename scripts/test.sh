#!/usr/bin/env bash
# Runs every test of Strata: Rust unit and integration tests (including the sqllogictest
# suite), then the end-to-end suite against the real binary with the real OpenTelemetry SDK.
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh rust       Rust tests only
#   ./scripts/test.sh e2e        end-to-end tests only (builds the binary first)
#
# Needs: cargo, python3 (3.10+). Creates .venv/ for the Python test clients.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-all}
target_dir=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*"; }

if [[ $what == all || $what == rust ]]; then
  step "cargo test --workspace"
  cargo test --workspace --no-fail-fast
fi

if [[ $what == all || $what == e2e ]]; then
  step "cargo build --bin strata"
  cargo build -p strata-server --bin strata

  step "python test environment (.venv)"
  if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt

  step "end-to-end tests (tests/e2e)"
  STRATA_BIN="$target_dir/debug/strata" .venv/bin/python -m pytest tests/e2e -q
fi

step "all tests passed"
