#!/usr/bin/env bash
# Schemathesis against a served instance on each store, with a signed-in cookie.
#
#   bash tests/schemathesis/run.sh [sqlite|postgres ...]     (default: both)
#
# Serves `session-ledger serve --demo` on a free port (SQLite: a temporary file; PostgreSQL:
# a fresh schema on SESSION_LEDGER_TEST_POSTGRES_URL, dropped afterwards), then runs
# schemathesis over /openapi.json with tests/schemathesis/hooks.py renewing the cookie.
# Passes only with 0 server errors, 0 schema violations and 0 undocumented statuses (the
# checks below). Bounded: SCHEMATHESIS_MAX_EXAMPLES examples per operation (default 25) and
# SCHEMATHESIS_MAX_TIME seconds (default 90) per store. Re-run it after adding routes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

PG_URL="${SESSION_LEDGER_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"
stores=("$@")
[ ${#stores[@]} -eq 0 ] && stores=(sqlite postgres)

free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_store() {
    local store=$1 work url schema="" port pid status=0
    work=$(mktemp -d)
    if [ "$store" = postgres ]; then
        schema="st_$(python -c 'import uuid; print(uuid.uuid4().hex[:10])')"
        psql "$PG_URL" -qc "CREATE SCHEMA $schema"
        url="$PG_URL$([[ $PG_URL == *\?* ]] && echo '&' || echo '?')schema=$schema"
    else
        url="sqlite:///$work/st.db"
    fi
    port=$(free_port)
    # Sign-ins from the one test address would otherwise meet the per-address limit.
    SESSION_LEDGER_DATABASE_URL="$url" SESSION_LEDGER_COOKIE_SECURE=false \
        SESSION_LEDGER_RATE_LIMIT_SIGN_INS_PER_ADDRESS=100000 \
        python -m api.cli serve --port "$port" --demo >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/openapi.json" && break
        sleep 0.5
    done
    echo "== schemathesis on $store (port $port)"
    # From the temporary directory: schemathesis leaves its .schemathesis/ where it runs.
    (cd "$work" && SESSION_LEDGER_ST_BASE_URL="http://127.0.0.1:$port" \
        SCHEMATHESIS_HOOKS=tests.schemathesis.hooks schemathesis run "http://127.0.0.1:$port/openapi.json" \
        --checks "$CHECKS" \
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
        --max-time "${SCHEMATHESIS_MAX_TIME:-90}" \
        --phases examples,coverage,fuzzing \
        --seed "${SCHEMATHESIS_SEED:-1}" \
        --generation-database none --no-color --workers 1 \
        --request-timeout 30) || status=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        echo "-- server log (tail)"; tail -40 "$work/server.log"
    fi
    [ -n "$schema" ] && PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL" -qc "DROP SCHEMA $schema CASCADE"
    rm -rf "$work"
    return "$status"
}

passed=0
failed=0
for store in "${stores[@]}"; do
    if run_store "$store"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "schemathesis: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
