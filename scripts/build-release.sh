#!/usr/bin/env bash
# Builds the release binaries (streamhouse-agent, streamctl) with the
# locked dependencies and copies them to OUT (default target/dist). The
# Dockerfile's build stage runs exactly this; set STREAMHOUSE_COMMIT when
# there is no .git (the agent's --version names it).
# Usage: scripts/build-release.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/dist}
cargo build --release --locked -p streamhouse-agent --bin streamhouse-agent
cargo build --release --locked -p streamctl --bin streamctl
mkdir -p "$out"
for bin in streamhouse-agent streamctl; do
  cp "target/release/$bin" "$out/$bin"
done
echo "built: $(ls "$out")"
