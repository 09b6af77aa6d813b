#!/usr/bin/env bash
# Usage: scripts-ci/db/backup-db.sh ENV [--dry-run]
#
# Backs up ENV's PostgreSQL database before a migration: pg_dump in custom format to
# BACKUP_DIR/<ENV>-<UTC timestamp>.dump, then verifies it (pg_restore --list reads the
# whole table of contents) and writes its SHA-256 next to it (<file>.sha256). The dump is
# written under a temporary name and renamed only once verified, so restore-db.sh never
# picks up half a backup. Prints the path of the backup on stdout. The backup holds every
# row of the database: it is written readable by its owner only (0600, directory 0700).
#
# Arguments and options:
#   ENV             staging or production (prod)
#   --dry-run       show what would be dumped where, without connecting
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   STAGING_DATABASE_URL / PRODUCTION_DATABASE_URL   the environment's database, else
#   DATABASE_URL    postgresql://user@host:5432/dbname (a SQLAlchemy postgresql+psycopg://
#                   URL works too); the password in the URL or in PGPASSWORD (masked)
#   BACKUP_DIR      where backups go [backups] (keep it as a job artifact or on a volume)
#   PG_LOCK_WAIT_TIMEOUT   give up when a table stays locked this long [60s]
# pg_dump must be at least the server's major version (package postgresql-client-NN).
#
# Exit codes: 0 backup written and verified; 1 pg_dump failed or the backup does not
# verify; 2 usage or configuration error; 3 pg_dump, pg_restore or sha256sum missing.
#
# Example: STAGING_DATABASE_URL=postgresql://app@db:5432/app scripts-ci/db/backup-db.sh staging
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

env_name=""
while (($# > 0)); do
  case "$1" in
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    -*) usage_error "unknown option '$1'" ;;
    *) [[ -z "$env_name" ]] || usage_error "only one environment, got '$env_name' and '$1'"; env_name=$1; shift ;;
  esac
done
[[ -n "$env_name" ]] || usage_error "which environment? e.g. backup-db.sh staging"
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "back up staging or production"
url=$(database_url "$env_name")
backup_dir=${BACKUP_DIR:-backups}
file="$backup_dir/$env_name-$(date -u +%Y%m%dT%H%M%SZ).dump"

if [[ "$DRY_RUN" == true ]]; then
  info "dry-run, would dump $(redact_url "$url") to $file, verify it and write $file.sha256"
  exit 0
fi
require_cmd pg_dump "install the PostgreSQL client, same major version as the server or newer (apt-get install postgresql-client)"
require_cmd pg_restore "install the PostgreSQL client (apt-get install postgresql-client)"
require_cmd sha256sum "install coreutils"

umask 077
mkdir -p "$backup_dir"
partial="$file.partial"
cleanup_later "$partial"
info "dumping $env_name database $(redact_url "$url") to $file"
if ! pg_dump --format=custom --lock-wait-timeout="${PG_LOCK_WAIT_TIMEOUT:-60s}" --file="$partial" --dbname="$url"; then
  die "$EXIT_FAILED" "pg_dump failed (see above): nothing was written"
fi

# Verify: pg_restore reads the whole table of contents of the archive.
if ! toc=$(pg_restore --list "$partial"); then
  die "$EXIT_FAILED" "the dump does not read back (pg_restore --list failed): it is not kept"
fi
tables=$(grep -c ' TABLE DATA ' <<<"$toc" || true)
[[ "$tables" -gt 0 ]] || warn "the dump holds no table data: is $(redact_url "$url") the right database?"
chmod 600 "$partial"
mv "$partial" "$file"
(cd "$(dirname "$file")" && sha256sum "$(basename "$file")" >"$(basename "$file").sha256")
chmod 600 "$file.sha256"
info "backup verified: $file ($(du -h "$file" | cut -f1), $tables tables with data, sha256 $(cut -c1-12 "$file.sha256")...)"
printf '%s\n' "$file"
