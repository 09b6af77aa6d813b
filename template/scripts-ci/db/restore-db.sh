#!/usr/bin/env bash
# Usage: scripts-ci/db/restore-db.sh ENV [--file BACKUP] [--dry-run]
#
# Restores ENV's PostgreSQL database from a backup made by backup-db.sh, e.g. after a
# failed migration. Without --file it takes the newest BACKUP_DIR/<ENV>-*.dump, and it
# refuses to run when there is none. It checks the backup first (SHA-256 when the .sha256
# file is there, and pg_restore --list), then restores in one transaction: every object in
# the backup is dropped and recreated with its data (pg_restore --clean --if-exists
# --single-transaction --exit-on-error), so either the whole backup is back or, on an
# error, the database is left as it was. Objects that are not in the backup (a table a
# failed migration created) are left alone. Ownership is not restored: the restoring user
# owns what it recreates (pg_restore --no-owner).
#
# Arguments and options:
#   ENV             staging or production (prod)
#   --file BACKUP   restore this file instead of the newest backup of ENV
#   --dry-run       show which backup would be restored, check it, change nothing
#   -h, --help      show this help
#
# Environment: STAGING_DATABASE_URL / PRODUCTION_DATABASE_URL / DATABASE_URL and
# BACKUP_DIR [backups], as for backup-db.sh.
#
# Exit codes: 0 restored; 1 pg_restore failed (the database is unchanged) or the backup
# is damaged; 2 usage or configuration error; 3 pg_restore or sha256sum missing; 4 no
# backup to restore: refused.
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
  info "dry-run, would restore $file into $(redact_url "$url") (pg_restore --clean --if-exists --single-transaction)"
  exit 0
fi
info "restoring $file into $env_name database $(redact_url "$url")"
if ! pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname="$url" "$file"; then
  die "$EXIT_FAILED" "pg_restore failed (see above); the restore ran in one transaction, so the database is as it was before"
fi
info "restored $env_name from $file"
