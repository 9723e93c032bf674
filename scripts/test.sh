#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (Python reference verifiers, PostgreSQL), checks formatting and lints, runs
# the unit and integration tests once per backend (SQLite, then a throw-away
# PostgreSQL cluster), then fuzzes the live API against its own OpenAPI
# document with schemathesis. A skipped or filtered-out test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
rustc --version
command -v python3 >/dev/null || { apt-get update && apt-get install -y python3 python3-venv; }

step "python tools (schemathesis) in target/test-venv"
venv="$root/target/test-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
        apt-get update && apt-get install -y python3-venv
        python3 -m venv "$venv"
    }
fi
if ! cmp -s tests/requirements.txt "$venv/installed-requirements.txt"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$venv/installed-requirements.txt"
fi
# The integration suite checks signatures and schemas with these reference implementations.
export CHARTWIRE_TEST_PYTHON="$venv/bin/python"

step "Chromium for the admin pages' browser test"
# Debian's Chromium, driven headless over its DevTools pipe; the browser
# test fails (never skips) without it.
if ! command -v chromium >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core
fi
CHARTWIRE_TEST_CHROMIUM=$(command -v chromium)
export CHARTWIRE_TEST_CHROMIUM
"$CHARTWIRE_TEST_CHROMIUM" --headless --no-sandbox --version

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

step "a throw-away PostgreSQL cluster"
# shellcheck source=scripts/postgres.sh
. "$root/scripts/postgres.sh"
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pg_start "$pg_port"
cleanup() {
    [ -n "${server:-}" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
    [ -n "${work:-}" ] && rm -rf "$work"
    pg_stop
}
trap cleanup EXIT
echo "PostgreSQL on 127.0.0.1:$pg_port"

# Every test must run: a summary with ignored or filtered-out tests fails.
run_suite() {
    local backend=$1
    shift
    local log="$root/target/test-$backend.log"
    CHARTWIRE_TEST_BACKEND=$backend cargo test "$@" 2>&1 | tee "$log"
    if grep -E '^test result:' "$log" | grep -Ev ' 0 ignored; 0 measured; 0 filtered out' >/dev/null; then
        echo "some tests did not run on $backend" >&2
        exit 1
    fi
}

step "unit and integration tests (backend: sqlite)"
run_suite sqlite --all-targets

step "integration tests (backend: postgres)"
run_suite postgres --test it
echo "admin page screenshots: $root/target/tmp/admin-screenshots/"

# A fixed seed keeps CI reproducible; set CHARTWIRE_SCHEMATHESIS_SEED to explore other cases.
step "schemathesis against a live server"
bin="$root/target/debug/chartwire"
work=$(mktemp -d -t chartwire-st.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CHARTWIRE_LOG=warn "$bin" serve --data-dir "$work" --listen "127.0.0.1:$port" >"$work/serve.out" 2>"$work/serve.log" &
server=$!
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the server did not start")
PY
key=$("$bin" keys create --role superadmin --name schemathesis --data-dir "$work")
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all --exclude-checks positive_data_acceptance \
    --phases examples,coverage,fuzzing \
    --max-examples 25 --workers 2 \
    --seed "${CHARTWIRE_SCHEMATHESIS_SEED:-20261203}" \
    --exclude-path-regex '^/docs' \
    --request-timeout 10 \
    --no-color
echo "schemathesis: passed"
