#!/usr/bin/env bash
# The whole test suite on a fresh machine: starts the services it needs, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
# An embedded modern ClickHouse (26.x) checks the migrations that 18.16 cannot run.
if ! python3 -c "import chdb" >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check chdb-core==26.9.0
fi
export REQUIRE_CHDB=1
# Tests that run their own Redis or ClickHouse servers fail instead of skipping when the binaries are missing.
export REQUIRE_SERVICES=1
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export CLICKHOUSE_URL="${CLICKHOUSE_URL:-http://127.0.0.1:8123}"
# Every failing test is reported, not only the first binary with one.
cargo test --workspace --all-targets --release --no-fail-fast "$@"
