#!/usr/bin/env bash
# scripts-ci/deploy/canary-deploy.sh --percent N [--image IMAGE] [--dry-run]: one step of the
# progressive production rollout. This script checks the options and works out the image;
# the step itself depends on the workload: canary_deploy in lib/$WORKLOAD.sh (WORKLOAD is
# set in lib/project.sh), lib/http.sh (traffic to a canary Deployment) or lib/batch.sh (a
# run of the canary CronJob on a share of the data). The --help text is there too.
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"
# The workload's library: lib/http.sh or lib/batch.sh.
# shellcheck source=/dev/null
source "$SCRIPTS_CI_DIR/lib/$WORKLOAD.sh"

percent=""
image_option=""
while (($# > 0)); do
  case "$1" in
    --percent) require_value "$1" "${2:-}"; percent=$2; shift 2 ;;
    --image) require_value "$1" "${2:-}"; image_option=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_workload_help "$SCRIPTS_CI_DIR/lib/$WORKLOAD.sh"; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[[ -n "$percent" ]] || usage_error "--percent is required"
if [[ ! "$percent" =~ ^[0-9]{1,3}$ ]] || ((10#$percent < 1 || 10#$percent > 100)); then
  usage_error "--percent must be a whole number from 1 to 100, got '$percent'"
fi
percent=$((10#$percent))
require_k8s_tools
image=$(deploy_image "$image_option")
namespace=$(k8s_namespace production)

canary_deploy "$namespace" "$image" "$percent"
