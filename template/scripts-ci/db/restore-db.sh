#!/usr/bin/env bash
# Usage: scripts-ci/db/restore-db.sh ENV [--file BACKUP] [--dry-run]
#
# Restores ENV's PostgreSQL database from a backup made by backup-db.sh, e.g. after a
# failed migration. Without --file it takes the newest BACKUP_DIR/<ENV>-*.dump, and it
# refuses to run when there is none. It checks the backup first (SHA-256 when the .sha256
# file is there, and pg_restore --list), then restores in one transaction: every object in
# the backup is dropped and recreated with its data (pg_restore --clean --if-exists, run
# by psql --single-transaction with ON_ERROR_STOP), so either the whole backup is back or,
# on an error, the database is left as it was. Objects that are not in the backup (a table a
# failed migration created) are left alone. Ownership is not restored: the restoring user
# owns what it recreates (pg_restore --no-owner).
#
# A restore throws away every row written since the backup was taken: after a failed
# migration it is a maintainer's decision (repair-migration.sh first; the pipeline's
# db-restore-<ENV> job is manual). While a running query holds a lock on a table of the
# backup, the restore waits at most PG_LOCK_WAIT_TIMEOUT, then gives up with exit 6, names
# the sessions holding the locks, and leaves the database unchanged. (While it waits, new
# queries on that table queue behind it: keep the timeout short.) It warns when the
# backup's Alembic revision is not the database's: the schema goes back too.
#
# Arguments and options:
#   ENV             staging or production (prod)
#   --file BACKUP   restore this file instead of the newest backup of ENV
#   --dry-run       show which backup would be restored, check it, change nothing
#   -h, --help      show this help
#
# Environment: STAGING_DATABASE_URL / PRODUCTION_DATABASE_URL / DATABASE_URL and
# BACKUP_DIR [backups], as for backup-db.sh; PG_LOCK_WAIT_TIMEOUT [30s] the longest wait
# for a lock on a table.
#
# Exit codes: 0 restored; 1 pg_restore failed (the database is unchanged) or the backup
# is damaged; 2 usage or configuration error; 3 pg_restore, psql or sha256sum missing; 4 no
# backup to restore: refused; 6 a table stayed locked longer than PG_LOCK_WAIT_TIMEOUT
# (the database is unchanged; run it again once the sessions named in the log are done).
#
# Example: STAGING_DATABASE_URL=postgresql://app@db:5432/app scripts-ci/db/restore-db.sh staging
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

env_name=""
file=""
while (($# > 0)); do
  case "$1" in
    --file) require_value "$1" "${2:-}"; file=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    -*) usage_error "unknown option '$1'" ;;
    *) [[ -z "$env_name" ]] || usage_error "only one environment, got '$env_name' and '$1'"; env_name=$1; shift ;;
  esac
done
[[ -n "$env_name" ]] || usage_error "which environment? e.g. restore-db.sh staging"
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "restore staging or production"
url=$(database_url "$env_name")
backup_dir=${BACKUP_DIR:-backups}
lock_wait=$(duration_seconds "${PG_LOCK_WAIT_TIMEOUT:-30s}")

if [[ -z "$file" ]]; then
  # Names carry a UTC timestamp, so the last one in sort order is the newest.
  if [[ -d "$backup_dir" ]]; then
    file=$(find "$backup_dir" -maxdepth 1 -name "$env_name-*.dump" -type f | sort | tail -n 1)
  fi
  if [[ -z "$file" ]]; then
    die "$EXIT_NO_DATA" "refusing to restore $env_name: no backup $backup_dir/$env_name-*.dump (make one with scripts-ci/db/backup-db.sh $env_name, or pass --file)"
  fi
elif [[ ! -f "$file" ]]; then
  die "$EXIT_NO_DATA" "refusing to restore $env_name: backup $file does not exist"
elif [[ "$(basename "$file")" != "$env_name"-* ]]; then
  warn "$file is not named as a $env_name backup: restoring it anyway, as asked"
fi
require_cmd pg_restore "install the PostgreSQL client, same major version as the server or newer (apt-get install postgresql-client)"
require_cmd psql "install the PostgreSQL client (apt-get install postgresql-client)"
require_cmd sha256sum "install coreutils"

info "checking backup $file"
if [[ -f "$file.sha256" ]]; then
  (cd "$(dirname "$file")" && sha256sum --check --quiet "$(basename "$file").sha256") ||
    die "$EXIT_FAILED" "$file does not match its checksum $file.sha256: the backup is damaged, not restoring it"
else
  warn "no $file.sha256 next to the backup: checking its table of contents only"
fi
pg_restore --list "$file" >/dev/null || die "$EXIT_FAILED" "$file is not a readable pg_dump archive"

if [[ "$DRY_RUN" == true ]]; then
  info "dry-run, would restore $file into $(redact_url "$url") (pg_restore --clean --if-exists, in one transaction)"
  exit 0
fi
# lock_holders: the other sessions holding locks on tables, for the error message.
lock_holders() {
  command -v psql >/dev/null 2>&1 || return 0
  PGOPTIONS="-c statement_timeout=10s" psql -X -A -t -F ' | ' --dbname="$url" -c "
    SELECT 'pid ' || a.pid, coalesce(a.usename, '?'), coalesce(a.application_name, ''),
           a.state, 'since ' || date_trunc('second', now() - coalesce(a.xact_start, a.query_start)),
           string_agg(DISTINCT l.relation::regclass::text || ' ' || l.mode, ', '), left(a.query, 120)
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.granted AND l.relation IS NOT NULL AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.relation::regclass::text NOT LIKE 'pg\_%'
    GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start, a.query_start, a.query" 2>/dev/null |
    while IFS= read -r line; do [[ -z "$line" ]] || error "  holding a lock: $line"; done
}

# The Alembic revision of the backup and of the database: a restore across revisions takes
# the schema back too, under a release that may need the newer one.
backup_revision=$(pg_restore --data-only --table=alembic_version --file=- "$file" 2>/dev/null |
  awk '/^COPY /{copy=1; next} /^\\\.$/{copy=0} copy' | sort | paste -sd, - || true)
database_revision=$(PGOPTIONS="-c lock_timeout=5s -c statement_timeout=10s" psql -X -A -t --dbname="$url" -c "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version" 2>/dev/null || true)
if [[ -n "$backup_revision$database_revision" && "$backup_revision" != "$database_revision" ]]; then
  warn "the backup is at revision ${backup_revision:-none}, the database at ${database_revision:-none}: the restore takes the schema back to ${backup_revision:-none}; roll the application back first if the running release needs ${database_revision:-none}"
fi
info "restoring $file into $env_name database $(redact_url "$url"): every table of the backup gets its content of $(basename "$file" .dump | sed -E "s/^$env_name-//"); rows written since are lost (waiting at most ${lock_wait}s for locks)"
errors=$(mktemp)
cleanup_later "$errors"
# pg_restore would set lock_timeout = 0 in the session itself (the first statements of
# every archive), so the restore goes through psql: the archive as SQL, its first
# `SET lock_timeout = 0;` (the header's) replaced by the bounded wait, in one transaction
# that stops at the first error.
status=0
pg_restore --clean --if-exists --no-owner --file=- "$file" 2>"$errors" |
  sed "0,/^SET lock_timeout = 0;\$/s//SET lock_timeout = '${lock_wait}s';/" |
  PGOPTIONS="${PGOPTIONS:-} -c lock_timeout=${lock_wait}s" \
    psql --no-psqlrc --quiet --single-transaction --set=ON_ERROR_STOP=1 --output=/dev/null \
    --dbname="$url" 2>>"$errors" || status=$?
cat "$errors" >&2
if ((status != 0)); then
  if grep -q "lock timeout" "$errors"; then
    error "a table of the backup stayed locked by another session for more than ${lock_wait}s (PG_LOCK_WAIT_TIMEOUT):"
    lock_holders
    die "$EXIT_BUSY" "not restored: the database is unchanged (the restore ran in one transaction). Run it again once those sessions are done, or end them (SELECT pg_terminate_backend(pid)) if they are stuck"
  fi
  die "$EXIT_FAILED" "the restore failed (see above); it ran in one transaction, so the database is as it was before"
fi
info "restored $env_name from $file"
