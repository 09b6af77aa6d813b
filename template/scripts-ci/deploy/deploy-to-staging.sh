#!/usr/bin/env bash
# scripts-ci/deploy/deploy-to-staging.sh [--image IMAGE] [--dry-run]: deploys IMAGE to
# staging. This script checks the options and works out the image; the deploy itself
# depends on the workload: deploy_to_staging in lib/$WORKLOAD.sh (WORKLOAD is set in
# lib/project.sh), lib/http.sh (the Deployment's rollout) or lib/batch.sh (the CronJob and
# one sample run of it). The --help text is there too.
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"
# The workload's library: lib/http.sh or lib/batch.sh.
# shellcheck source=/dev/null
source "$SCRIPTS_CI_DIR/lib/$WORKLOAD.sh"

image_option=""
while (($# > 0)); do
  case "$1" in
    --image) require_value "$1" "${2:-}"; image_option=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_workload_help "$SCRIPTS_CI_DIR/lib/$WORKLOAD.sh"; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_k8s_tools
image=$(deploy_image "$image_option")
namespace=$(k8s_namespace staging)

deploy_to_staging "$namespace" "$image"
