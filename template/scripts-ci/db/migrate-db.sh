#!/usr/bin/env bash
# Usage: scripts-ci/db/migrate-db.sh ENV [--record FILE] [--dry-run]
#
# Migrates ENV's database to the newest revision (alembic upgrade head), after recording
# the state it starts from: the Alembic revision and the schema, in
# BACKUP_DIR/<ENV>-before-migration.json. When the upgrade fails, repair-migration.sh
# decides from that record what, if anything, to undo (never `alembic downgrade -1`).
# Nothing is migrated when the state cannot be recorded.
#
# Arguments and options:
#   ENV             staging or production (prod)
#   --record FILE   where to record the state [BACKUP_DIR/<ENV>-before-migration.json]
#   --dry-run       record nothing, show the SQL the upgrade would run (alembic --sql)
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   STAGING_DATABASE_URL / PRODUCTION_DATABASE_URL   the environment's database, else
#   DATABASE_URL    as for backup-db.sh; handed to Alembic (migrations/env.py) as DATABASE_URL
#   BACKUP_DIR      where the record goes [backups]
#   PYTHON          the project's interpreter, with Alembic [.venv/bin/python]
#
# Exit codes: 0 migrated (or already at the newest revision); 1 the migration failed (the
# record says what it started from) or the state could not be recorded (nothing migrated);
# 2 usage or configuration error; 3 the project's virtualenv is missing.
#
# Example: STAGING_DATABASE_URL=postgresql://app@db:5432/app scripts-ci/db/migrate-db.sh staging
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

env_name=""
record=""
while (($# > 0)); do
  case "$1" in
    --record) require_value "$1" "${2:-}"; record=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    -*) usage_error "unknown option '$1'" ;;
    *) [[ -z "$env_name" ]] || usage_error "only one environment, got '$env_name' and '$1'"; env_name=$1; shift ;;
  esac
done
[[ -n "$env_name" ]] || usage_error "which environment? e.g. migrate-db.sh staging"
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "migrate staging or production (locally: make migrate)"
DATABASE_URL=$(database_url "$env_name")
export DATABASE_URL
record=${record:-${BACKUP_DIR:-backups}/$env_name-before-migration.json}
python=${PYTHON:-$REPO_ROOT/.venv/bin/python}
require_cmd "$python" "run \`uv sync\` first (the pipeline's .uv jobs do), or set PYTHON"
alembic=("$python" -m alembic -c "$REPO_ROOT/alembic.ini")

if [[ "$DRY_RUN" == true ]]; then
  info "dry-run, would record the state of $(redact_url "$DATABASE_URL") in $record, then run alembic upgrade head:"
  "${alembic[@]}" upgrade head --sql
  exit 0
fi
umask 077
# A record left by an earlier run must never stand for this one (BACKUP_DIR may be durable).
rm -f -- "$record"
if ! "$python" "$SCRIPTS_CI_DIR/db/migration_state.py" record --file "$record" --env "$env_name"; then
  die "$EXIT_FAILED" "could not record the state of the $env_name database: not migrating"
fi
info "migrating $env_name database $(redact_url "$DATABASE_URL"): alembic upgrade head"
if ! "${alembic[@]}" upgrade head; then
  die "$EXIT_FAILED" "the migration failed (see above). Do not downgrade by hand: scripts-ci/db/repair-migration.sh $env_name (the pipeline's db-repair-$env_name job) decides from $record what to undo"
fi
info "migrated $env_name to $("${alembic[@]}" current 2>/dev/null | tr '\n' ' ')"
