#!/usr/bin/env bash
# Usage: scripts-ci/ml/dvc-sync.sh pull|push [--dry-run]
#
# Moves the data and models dvc.lock names between the workspace and the DVC remote
# `storage`, where the project's data versions live:
#   pull   before `dvc repro`: fetch what the last pushed run produced, so `dvc repro` re-runs
#          only the stages whose code, parameters or data changed since (none: nothing runs,
#          no retraining). Outputs the remote does not hold yet are left to `dvc repro`.
#   push   after `dvc repro`: store what this run produced, for the next run (CI, a teammate,
#          `git checkout` of this commit + `dvc pull`).
#
# The remote is the `storage` of .dvc/config (s3://<service>-data/dvc); a CI/CD variable
# overrides it for this checkout (written to .dvc/config.local, never committed):
#   DVC_REMOTE_URL        s3://bucket/path of the remote
#   DVC_S3_ENDPOINT_URL   the endpoint of an S3-compatible store (MinIO, Ceph); empty: AWS S3
# Credentials come from the environment, as boto3 reads them: AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY (masked, protected CI/CD variables), or the runner's role.
#   DVC_SYNC=off          skip (a project without its bucket yet): `dvc repro` runs everything
#
# Options:
#   --dry-run    print the commands instead of running them
#   -h, --help   show this help
#
# Exit codes: 0 done (or DVC_SYNC=off); 1 push found outputs missing from the cache (run
# `dvc repro` first); 2 usage or configuration error; 3 dvc missing; 5 the remote is
# unreachable or refused the request (endpoint, bucket, credentials).
#
# Example: DVC_REMOTE_URL=s3://ml-data/fraud-scoring scripts-ci/ml/dvc-sync.sh pull
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

action=""
while (($# > 0)); do
  case "$1" in
    pull | push) [[ -z "$action" ]] || usage_error "one action only, got '$action' and '$1'"; action=$1; shift ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[[ -n "$action" ]] || usage_error "say pull (before dvc repro) or push (after it)"

case "${DVC_SYNC:-on}" in
  off)
    warn "DVC_SYNC=off: no $action; data and models stay in this workspace (set DVC_REMOTE_URL and the AWS credentials, then remove DVC_SYNC, to version them)"
    exit 0 ;;
  on) ;;
  *) die "$EXIT_USAGE" "DVC_SYNC must be on or off, got '${DVC_SYNC}'" ;;
esac

if command -v dvc >/dev/null 2>&1; then
  dvc=(dvc)
elif command -v uv >/dev/null 2>&1; then
  dvc=(uv run --no-sync dvc)
else
  die "$EXIT_MISSING_TOOL" "dvc is not installed: run 'uv sync' (dvc[s3] is a dev dependency)"
fi

cd "$REPO_ROOT"
if [[ -n "${DVC_REMOTE_URL:-}" ]]; then
  if [[ ! "$DVC_REMOTE_URL" =~ ^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$ ]]; then
    die "$EXIT_USAGE" "DVC_REMOTE_URL must be s3://bucket/path (a bucket name of 3-63 lowercase letters, digits, '.' or '-'), got '$DVC_REMOTE_URL'"
  fi
  mutate "${dvc[@]}" remote modify --local storage url "$DVC_REMOTE_URL"
fi
if [[ -n "${DVC_S3_ENDPOINT_URL:-}" ]]; then
  if [[ ! "$DVC_S3_ENDPOINT_URL" =~ ^https?://[^[:space:]/]+/?$ ]]; then
    die "$EXIT_USAGE" "DVC_S3_ENDPOINT_URL must be http(s)://host[:port] of the S3-compatible store, got '$(redact_url "$DVC_S3_ENDPOINT_URL")'"
  fi
  mutate "${dvc[@]}" remote modify --local storage endpointurl "$DVC_S3_ENDPOINT_URL"
fi
if [[ -n "${AWS_ACCESS_KEY_ID:-}" && -z "${AWS_SECRET_ACCESS_KEY:-}" ]]; then
  die "$EXIT_USAGE" "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both (masked CI/CD variables)"
fi
remote=$("${dvc[@]}" config remote.storage.url 2>/dev/null) || die "$EXIT_USAGE" "no DVC remote 'storage' in .dvc/config: set DVC_REMOTE_URL"

output=$(mktemp)
trap 'rm -f "$output"' EXIT
if [[ "$action" == pull ]]; then
  # --allow-missing: what the remote does not hold yet (a first run, a new stage) is not an
  # error; `dvc repro` produces it.
  command=("${dvc[@]}" pull --allow-missing)
else
  command=("${dvc[@]}" push)
fi
info "$action: the DVC remote storage at $remote"
if mutate "${command[@]}" >"$output" 2>&1; then
  cat "$output" >&2
  info "$action done"
  exit 0
fi
cat "$output" >&2
if [[ "$action" == push ]] && grep -qi "missing cache files\|were not found in cache\|missing from cache\|not found in cache" "$output"; then
  die "$EXIT_FAILED" "push: some outputs of dvc.lock are not in the local cache: run 'dvc repro' (make repro) before pushing"
fi
die "$EXIT_UNREACHABLE" "$action failed against $remote: check the endpoint (DVC_S3_ENDPOINT_URL${DVC_S3_ENDPOINT_URL:+=$(redact_url "$DVC_S3_ENDPOINT_URL")}), that the bucket exists, and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); dvc said it above"
