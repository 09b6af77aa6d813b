#!/usr/bin/env bash
# Usage: scripts-ci/release/pin-model-version.sh [--alias ALIAS] [--name NAME] [--env-file FILE]
#
# The model version a release serves: resolves models:/NAME@ALIAS in the MLflow registry to
# its version number, prints it and, with --env-file, writes MODEL_VERSION=N there (the
# build job's dotenv report). The image is built with --build-arg MODEL_VERSION=N, so the
# version is part of the image: staging, every canary step and a rollback move the model
# exactly as they move the code. Pin by hand with MODEL_VERSION=N (no registry call).
#
# Options:
#   --alias ALIAS     registry alias to resolve (default MODEL_ALIAS or production)
#   --name NAME       registered model name (default MODEL_NAME or the service's name)
#   --env-file FILE   also write MODEL_VERSION=N to FILE
#   -h, --help        show this help
#
# Environment:
#   MLFLOW_TRACKING_URI (required)   the MLflow server, http(s)://...
#   MLFLOW_TRACKING_TOKEN            bearer token, or MLFLOW_TRACKING_USERNAME and _PASSWORD
#   MODEL_VERSION                    set: the release pins that version (checked to exist)
#   HTTP_MAX_TIME                    seconds per request (default 10)
#
# Exit codes: 0 resolved; 1 no such model, alias or version; 2 usage error; 3 curl or jq
# missing; 5 the registry is unreachable or failing.
#
# Example: MLFLOW_TRACKING_URI=https://mlflow.example.com scripts-ci/release/pin-model-version.sh --env-file model.env
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

alias_name=${MODEL_ALIAS:-production}
model_name=${MODEL_NAME:-$SERVICE_NAME}
env_file=""
while (($# > 0)); do
  case "$1" in
    --alias) require_value "$1" "${2:-}"; alias_name=$2; shift 2 ;;
    --name) require_value "$1" "${2:-}"; model_name=$2; shift 2 ;;
    --env-file) require_value "$1" "${2:-}"; env_file=$2; shift 2 ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_env MLFLOW_TRACKING_URI "set it to the MLflow server that holds the registry (http(s)://...)"
[[ "$MLFLOW_TRACKING_URI" =~ ^https?:// ]] || usage_error "MLFLOW_TRACKING_URI must be an http(s) URL, got '$(redact_url "$MLFLOW_TRACKING_URI")'"
[[ "$alias_name" =~ ^[A-Za-z0-9_-]{1,255}$ ]] || usage_error "the alias must be letters, digits, '_' or '-', got '$alias_name'"
[[ -n "$model_name" ]] || usage_error "the model name is empty: give --name or MODEL_NAME"
[[ -z "${MODEL_VERSION:-}" || "$MODEL_VERSION" =~ ^[1-9][0-9]{0,9}$ ]] || usage_error "MODEL_VERSION must be a version number, got '$MODEL_VERSION'"
require_cmd curl "install curl (apt-get install curl)"
require_cmd jq "install jq (apt-get install jq)"

registry=${MLFLOW_TRACKING_URI%/}
where=$(redact_url "$registry")
args=(--silent --show-error --max-time "${HTTP_MAX_TIME:-10}" --get --write-out '\n%{http_code}')
if [[ -n "${MLFLOW_TRACKING_TOKEN:-}" ]]; then
  args+=(--header @<(printf 'Authorization: Bearer %s\n' "$MLFLOW_TRACKING_TOKEN"))
elif [[ -n "${MLFLOW_TRACKING_USERNAME:-}" ]]; then
  args+=(--user "$MLFLOW_TRACKING_USERNAME:${MLFLOW_TRACKING_PASSWORD:-}")
fi
if [[ -n "${MODEL_VERSION:-}" ]]; then
  what="models:/$model_name/$MODEL_VERSION"
  args+=(--data-urlencode "name=$model_name" --data-urlencode "version=$MODEL_VERSION")
  endpoint=$registry/api/2.0/mlflow/model-versions/get
else
  what="models:/$model_name@$alias_name"
  args+=(--data-urlencode "name=$model_name" --data-urlencode "alias=$alias_name")
  endpoint=$registry/api/2.0/mlflow/registered-models/alias
fi
answer=$(curl "${args[@]}" "$endpoint" 2>&1) || die "$EXIT_UNREACHABLE" "the MLflow registry at $where is unreachable: $(tail -n 1 <<<"$answer")"
status=$(tail -n 1 <<<"$answer")
body=$(sed '$d' <<<"$answer")
case "$status" in
  200) ;;
  404 | 400) die "$EXIT_FAILED" "$what is not in the registry at $where: $(jq -r '.message // .error_code // .' <<<"$body" 2>/dev/null | head -c 300)" ;;
  *) die "$EXIT_UNREACHABLE" "the MLflow registry at $where answered HTTP $status for $what: $(head -c 300 <<<"$body")" ;;
esac
version=$(jq -r '.model_version.version // empty' <<<"$body" 2>/dev/null) || true
[[ "$version" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_UNREACHABLE" "the MLflow registry at $where gave no version for $what: $(head -c 300 <<<"$body")"
info "$what is version $version: the release pins it (MODEL_VERSION=$version)"
if [[ -n "$env_file" ]]; then
  printf 'MODEL_VERSION=%s\n' "$version" >"$env_file"
fi
printf '%s\n' "$version"
