# shellcheck shell=bash
# Shared helpers of scripts-ci/: logging, errors, configuration checks, dry-run and help.
# Sourced by every script (never run on its own). Logs go to stderr, one line per event,
# prefixed with a UTC timestamp, the script's name and a level, so a CI job log reads in
# order; results (tables, reports) go to stdout.

# Exit codes shared by every script (README.md, "Exit codes").
# shellcheck disable=SC2034  # each script uses some of them
readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_MISSING_TOOL=3 EXIT_NO_DATA=4 EXIT_UNREACHABLE=5 EXIT_BUSY=6
# 6 also means "inconclusive" for the monitoring checks: too little traffic for a verdict.
readonly EXIT_INCONCLUSIVE=6

SCRIPT_NAME="$(basename "$0" .sh)"
SCRIPTS_CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(dirname "$SCRIPTS_CI_DIR")"
DRY_RUN="${DRY_RUN:-false}"

# shellcheck source=project.sh
source "$SCRIPTS_CI_DIR/lib/project.sh"

_log() {
  local level=$1
  shift
  printf '%s [%s] %-5s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SCRIPT_NAME" "$level" "$*" >&2
}
info() { _log INFO "$@"; }
warn() { _log WARN "$@"; }
error() { _log ERROR "$@"; }

# die CODE MESSAGE...: log the error and exit with CODE.
die() {
  local code=$1
  shift
  error "$@"
  exit "$code"
}

# The comment block at the top of the calling script is its --help text.
show_help() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

# show_workload_help LIBRARY: the --help text of a deploy script whose work depends on the
# workload: the comment block of LIBRARY (lib/http.sh or lib/batch.sh) that starts with
# "# Usage: scripts-ci/deploy/<the script> ".
show_workload_help() {
  awk -v script="/$SCRIPT_NAME.sh " '
    index($0, "# Usage: scripts-ci/") == 1 && index($0, script) { found = 1 }
    found && /^#/ { sub(/^# ?/, ""); print; next }
    found { exit }' "$1"
}

# usage_error MESSAGE: a wrong argument; points to --help.
usage_error() {
  die "$EXIT_USAGE" "$* (see $0 --help)"
}

# require_env NAME HINT: NAME must be set and not empty.
require_env() {
  local name=$1 hint=${2:-}
  if [[ -z "${!name:-}" ]]; then
    die "$EXIT_USAGE" "$name is not set${hint:+: $hint}"
  fi
}

# require_cmd COMMAND HINT: COMMAND must be on PATH.
require_cmd() {
  local cmd=$1 hint=${2:-}
  if ! command -v "$cmd" >/dev/null 2>&1; then
    die "$EXIT_MISSING_TOOL" "'$cmd' is not installed or not on PATH${hint:+: $hint}"
  fi
}

# require_value OPTION VALUE: an option that takes a value got one.
require_value() {
  if [[ -z "${2:-}" || "${2:-}" == --* ]]; then
    usage_error "$1 needs a value"
  fi
}

# quote ARGS...: the command line as a person would type it (for logs).
quote() {
  local arg line=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[][A-Za-z0-9_./:=@%+,{}-]+$ ]]; then
      line+=" $arg"
    else
      line+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${line# }"
}

# mutate COMMAND...: run a command that changes something; with --dry-run only show it.
mutate() {
  if [[ "$DRY_RUN" == true ]]; then
    info "dry-run, would run: $(quote "$@")"
    return 0
  fi
  info "+ $(quote "$@")"
  "$@"
}

# redact_url URL: the URL without its password, for logs.
redact_url() {
  printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@/]*@#\1:***@#'
}

# normalize_env NAME: staging | production | local (accepts prod).
normalize_env() {
  case "$1" in
    staging) printf 'staging' ;;
    prod | production) printf 'production' ;;
    local) printf 'local' ;;
    *) usage_error "unknown environment '$1': use staging, production (or prod) or local" ;;
  esac
}

# service_url ENV: the base URL of the service in ENV (SERVICE_URL overrides), no trailing /.
service_url() {
  local env=$1 url
  if [[ -n "${SERVICE_URL:-}" ]]; then
    url=$SERVICE_URL
  else
    case "$env" in
      staging) url=${STAGING_URL:-} ;;
      production) url=${PRODUCTION_URL:-} ;;
      local) url="http://127.0.0.1:${PORT:-8000}" ;;
    esac
  fi
  if [[ ! "$url" =~ ^https?://[^/]+ ]]; then
    die "$EXIT_USAGE" "no valid URL for environment '$env' (got '$url'): set SERVICE_URL, STAGING_URL or PRODUCTION_URL to http(s)://host[/prefix]"
  fi
  printf '%s' "${url%/}"
}

# duration_seconds 90s|5m|1h|30: seconds, or a usage error.
duration_seconds() {
  local value=$1
  if [[ ! "$value" =~ ^([0-9]+)([smh]?)$ ]]; then
    usage_error "invalid duration '$value': use a number with s, m or h, e.g. 30s, 5m, 1h"
  fi
  local number=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
  case "$unit" in
    m) number=$((number * 60)) ;;
    h) number=$((number * 3600)) ;;
  esac
  printf '%d' "$number"
}

# Temporary files and directories, removed when the script exits.
_CLEANUP=()
cleanup_later() { _CLEANUP+=("$@"); }
_cleanup() {
  if [[ -n "${_CLEANUP[*]}" ]]; then
    rm -rf -- "${_CLEANUP[@]}"
  fi
}
trap _cleanup EXIT

# k8s_namespace ENV: the Kubernetes namespace of ENV (K8S_NAMESPACE overrides).
k8s_namespace() {
  printf '%s' "${K8S_NAMESPACE:-$SERVICE_NAME-$1}"
}

# dry_run_note: " (dry-run: ...)" under --dry-run, nothing otherwise; for log lines.
dry_run_note() {
  if [[ "$DRY_RUN" == true ]]; then
    printf ' (dry-run: nothing is changed)'
  fi
}

# database_url ENV: the libpq URL of ENV's database: <ENV>_DATABASE_URL (STAGING_DATABASE_URL,
# PRODUCTION_DATABASE_URL), else DATABASE_URL. SQLAlchemy's driver suffix is dropped.
database_url() {
  local env=$1 name url
  name="$(tr '[:lower:]' '[:upper:]' <<<"$env")_DATABASE_URL"
  url=${!name:-${DATABASE_URL:-}}
  if [[ -z "$url" ]]; then
    die "$EXIT_USAGE" "no database for $env: set $name (or DATABASE_URL) to postgresql://user@host:5432/dbname (password in the URL or in PGPASSWORD)"
  fi
  url=$(sed -E 's#^postgres(ql)?\+[a-z0-9]+://#postgresql://#' <<<"$url")
  if [[ ! "$url" =~ ^postgres(ql)?:// ]]; then
    die "$EXIT_USAGE" "$name must be a PostgreSQL URL (postgresql://...), got $(redact_url "$url")"
  fi
  printf '%s' "$url"
}
