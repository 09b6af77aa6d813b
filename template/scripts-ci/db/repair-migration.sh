#!/usr/bin/env bash
# Usage: scripts-ci/db/repair-migration.sh ENV [--record FILE] [--dry-run]
#
# After a failed migration (migrate-db.sh), brings ENV's database back to the state
# recorded before it, deciding from that record (scripts-ci/db/migration_state.py), never
# with `alembic downgrade -1`:
#   - still at the recorded revision, and the revision that failed ran in a transaction:
#     PostgreSQL rolled it back; nothing to do (a downgrade would drop the tables of the
#     last good revision, which the running release reads);
#   - the revision that failed has non-transactional steps (autocommit_block, e.g.
#     CREATE INDEX CONCURRENTLY) and may be half-applied: its own downgrade runs;
#   - revisions of this run were committed before the failure: downgrade to exactly the
#     recorded revision (only what this run added goes);
# then it checks that revision and schema are the recorded ones. It never restores the
# backup: that would lose the rows written since. When the schema cannot be brought back
# it fails and says so; a maintainer decides (fix forward, or restore-db.sh).
#
# Arguments and options:
#   ENV             staging or production (prod)
#   --record FILE   the record migrate-db.sh wrote [BACKUP_DIR/<ENV>-before-migration.json]
#   --dry-run       say what would be done, change nothing
#   -h, --help      show this help
#
# Environment: STAGING_DATABASE_URL / PRODUCTION_DATABASE_URL / DATABASE_URL, BACKUP_DIR
# [backups] and PYTHON [.venv/bin/python], as for migrate-db.sh.
#
# Exit codes: 0 the database is at the recorded revision with the recorded schema (nothing
# to do, or repaired); 1 it is not: a maintainer decides; 2 usage or configuration error;
# 3 the project's virtualenv is missing; 4 no record of the state before the migration,
# or a history it cannot decide on (branches): refused, nothing changed.
#
# Example: STAGING_DATABASE_URL=postgresql://app@db:5432/app scripts-ci/db/repair-migration.sh staging
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
[[ -n "$env_name" ]] || usage_error "which environment? e.g. repair-migration.sh staging"
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "repair staging or production"
DATABASE_URL=$(database_url "$env_name")
export DATABASE_URL
record=${record:-${BACKUP_DIR:-backups}/$env_name-before-migration.json}
python=${PYTHON:-$REPO_ROOT/.venv/bin/python}
require_cmd "$python" "run \`uv sync\` first (the pipeline's .uv jobs do), or set PYTHON"

info "repairing the failed migration of $env_name database $(redact_url "$DATABASE_URL") from $record$(dry_run_note)"
args=(repair --file "$record" --config "$REPO_ROOT/alembic.ini")
[[ "$DRY_RUN" != true ]] || args+=(--dry-run)
status=0
(cd "$REPO_ROOT" && "$python" "$SCRIPTS_CI_DIR/db/migration_state.py" "${args[@]}") || status=$?
case "$status" in
  0) [[ "$DRY_RUN" == true ]] || info "$env_name database: at the revision and schema recorded before the migration" ;;
  4) error "refused, nothing changed (see above)" ;;
  *) error "$env_name database is not as before the migration (see above): a maintainer decides; restoring the backup (scripts-ci/db/restore-db.sh $env_name, the manual db-restore-$env_name job) loses every row written since it was taken" ;;
esac
exit "$status"
