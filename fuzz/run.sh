#!/usr/bin/env bash
# Builds StreamHouse's fuzz targets with AFL++ (cargo afl, stable toolchain),
# replays the committed corpus and past crashes, then fuzzes each target for
# a while. Fails when a target crashes or hangs; the failing inputs are
# copied to fuzz/findings/<target>/ (add each as fuzz/regressions/<target>/
# once it is fixed).
# Usage: fuzz/run.sh [SECONDS per target, default 60] [target ...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(batch wal_segment grpc_request metastore_text fetch_response)
fi
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --locked --version 0.18.2
fi
# Builds AFL++ itself once per toolchain ("already built" is fine).
if ! out=$(cargo afl config --build 2>&1); then
  if ! grep -q "already built" <<<"$out"; then
    echo "$out" >&2
    exit 1
  fi
fi
cargo afl build --release --features afl -q
# Replay the seed corpus and every past crash through the built targets
# (outside afl-fuzz each reads one input from stdin). `cargo test` in fuzz/
# does the same without AFL++.
for t in "${targets[@]}"; do
  shopt -s nullglob
  for f in corpus/$t/* regressions/$t/*; do
    if ! "target/release/$t" <"$f" >/dev/null 2>&1; then
      echo "fuzz: $t fails on $f" >&2
      exit 1
    fi
  done
  shopt -u nullglob
done
# AFL++ wants core dumps as plain files and a CPU it may bind; on a shared
# machine let it run without either rather than refuse.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_QUIET=1
failed=0
for t in "${targets[@]}"; do
  out=out/$t
  rm -rf "$out"
  mkdir -p out
  echo "fuzz: $t for ${secs}s"
  cargo afl fuzz -V "$secs" -i "corpus/$t" -o "$out" "target/release/$t" >"out-$t.log" 2>&1 || {
    echo "fuzz: afl-fuzz failed for $t; its log:" >&2
    tail -20 "out-$t.log" >&2
    failed=1
    continue
  }
  stats=$out/default/fuzzer_stats
  execs=$(awk -F': ' '/^execs_done/ {print $2}' "$stats")
  paths=$(awk -F': ' '/^corpus_count/ {print $2}' "$stats")
  found=0
  for kind in crashes hangs; do
    shopt -s nullglob
    files=("$out"/default/$kind/id:*)
    shopt -u nullglob
    if [ ${#files[@]} -gt 0 ]; then
      mkdir -p "findings/$t"
      cp "${files[@]}" "findings/$t/"
      echo "fuzz: $t: ${#files[@]} $kind, copied to fuzz/findings/$t/" >&2
      found=1
    fi
  done
  echo "fuzz: $t: $execs executions, $paths inputs in the queue, $([ $found = 0 ] && echo "no crash" || echo "FINDINGS")"
  [ $found = 0 ] || failed=1
done
exit $failed
