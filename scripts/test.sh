#!/usr/bin/env bash
# Runs the whole StreamHouse test suite: unit, property, integration and
# crash tests against real agent processes. Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets --all-features
cargo test --workspace --all-targets --all-features "$@"
