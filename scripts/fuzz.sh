#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) and runs each for a bounded time,
# one after the other. Fails if any target crashes, panics, leaks past its memory limit or
# times out on an input. See docs/FUZZING.md.
#
#   ./scripts/fuzz.sh            every target, 30 s each
#   ./scripts/fuzz.sh 180        every target, 180 s each
#   ./scripts/fuzz.sh 60 tenant_id otlp_json    only these targets
#
# Works on the stable toolchain: without a sanitizer (`--sanitizer none`; Strata is safe
# Rust, and a panic is what the targets look for) cargo-fuzz passes no unstable flag, so no
# nightly and no RUSTC_BOOTSTRAP are needed. Installs cargo-fuzz when missing.
#
# Build output goes to $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set (cache it in CI),
# else fuzz/target. libFuzzer adds the inputs it finds to a working corpus there
# (<target dir>/corpus/<target>), seeded from the committed fuzz/corpus/<target>, so the
# committed seeds stay as they are and a cached target dir carries coverage across runs.
# A crashing input is written to fuzz/artifacts/<target>/ (gitignored) and its path printed;
# reproduce it with `cargo fuzz run --sanitizer none <target> <file>` in fuzz/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: $0 [seconds-per-target] [target...]" >&2
  exit 2
fi

# The default toolchain, whatever it is (a CI machine has exactly one, stable): nothing here
# needs nightly.
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
  target_dir=$CARGO_TARGET_DIR/fuzz
else
  target_dir=$root/fuzz/target
fi
mkdir -p "$target_dir"

# Every target is one file in fuzz/fuzz_targets/ (and a [[bin]] in fuzz/Cargo.toml).
if (($# > 0)); then
  targets=("$@")
else
  targets=()
  for f in "$root"/fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi

# Largest input libFuzzer generates, per target: enough for a request with a few
# resources, scopes and items (OTLP) or a few KiB of compressed data; a tenant id is at
# most 150 bytes, so a little over that.
max_len() {
  case $1 in
    tenant_id) echo 256 ;;
    otlp_protobuf | otlp_json) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

# --sanitizer none: stable rustc has no -Zsanitizer. --codegen-units 16: a much shorter
# build of the dependency tree for a small loss of execution speed.
build_flags=(--sanitizer none --codegen-units 16 --target-dir "$target_dir")

cd "$root/fuzz"
start=$SECONDS
echo "== building ${#targets[@]} fuzz target(s) into $target_dir"
cargo fuzz build "${build_flags[@]}"
echo "== built in $((SECONDS - start)) s"

failed=()
for t in "${targets[@]}"; do
  work=$target_dir/corpus/$t
  mkdir -p "$work" "$root/fuzz/artifacts/$t"
  echo "== $t: ${seconds} s, max_len $(max_len "$t")"
  # The first corpus directory receives new inputs; the committed seeds are only read.
  if ! cargo fuzz run "${build_flags[@]}" "$t" "$work" "$root/fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1; then
    failed+=("$t")
  fi
done

echo "== done in $((SECONDS - start)) s"
if ((${#failed[@]} > 0)); then
  echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "all ${#targets[@]} fuzz target(s) ran without a crash"
