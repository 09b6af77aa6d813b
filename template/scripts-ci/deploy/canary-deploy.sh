#!/usr/bin/env bash
# Usage: scripts-ci/deploy/canary-deploy.sh --percent N [--image IMAGE] [--dry-run]
#
# One step of the progressive production rollout (the playbook's 5 -> 25 -> 50 -> 100).
#   N < 100   deploys IMAGE as the canary (deploy/overlays/canary: Deployment
#             <service>-canary), waits until it is ready, then sends N% of the traffic
#             to it and 100-N% to stable (weights of the HTTPRoute <service>).
#   N = 100   promotes: remembers stable's current image (for rollback), deploys IMAGE
#             to the stable Deployment (deploy/overlays/production), waits for the
#             rollout, sends all traffic to stable and scales the canary to 0.
# When the canary or stable does not become ready, the step rolls back on its own
# (rollback-deployment.sh --immediate; AUTO_ROLLBACK=false turns that off) and fails.
# Check the canary between steps with scripts-ci/monitoring/check-canary-health.sh.
#
# Options:
#   --percent N     share of traffic for the new version, 1-100 (required)
#   --image IMAGE   image to deploy (default IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA)
#   --dry-run       render and show every change (kubectl diff, the traffic patch) without
#                   applying anything; reads the cluster
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   IMAGE                  image reference with a tag or digest
#   K8S_NAMESPACE          [<service>-production]
#   KUBE_CONTEXT           kubectl context to use [the current one]
#   CANARY_REPLICAS        replicas of a canary that was scaled to 0 [1]
#   ROLLOUT_TIMEOUT        how long to wait for a rollout [300s]
#   AUTO_ROLLBACK          roll back when a rollout fails [true]
#   HTTPROUTE_NAME         [<service>]  DEPLOY_DIR [deploy/]  KUSTOMIZE_IMAGE_NAME [<service>]
#
# Exit codes: 0 the step is done; 1 kubectl failed or a rollout did not complete (rolled
# back unless AUTO_ROLLBACK=false); 2 usage or configuration error (no image, no stable
# release yet for a canary, manifests that do not match what the script expects);
# 3 kubectl or jq missing.
#
# Example: scripts-ci/deploy/canary-deploy.sh --percent 5
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"

percent=""
image_option=""
while (($# > 0)); do
  case "$1" in
    --percent) require_value "$1" "${2:-}"; percent=$2; shift 2 ;;
    --image) require_value "$1" "${2:-}"; image_option=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
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
export IMAGE=$image # for the automatic rollback

# fail_step MESSAGE: a rollout failed; roll back (unless AUTO_ROLLBACK=false) and exit 1.
fail_step() {
  error "$1"
  if [[ "${AUTO_ROLLBACK:-true}" == true ]]; then
    warn "rolling back automatically (AUTO_ROLLBACK=true)"
    "$SCRIPTS_CI_DIR/deploy/rollback-deployment.sh" --immediate || error "the automatic rollback failed too: act by hand (see scripts-ci/README.md)"
  fi
  exit "$EXIT_FAILED"
}

rendered=$(mktemp)
cleanup_later "$rendered"
if ((percent < 100)); then
  info "canary step: $percent% of production traffic to $image (namespace $namespace)$(dry_run_note)"
  stable_image=$(deployment_image "$namespace" "$STABLE_DEPLOYMENT")
  if [[ -z "$stable_image" ]]; then
    die "$EXIT_USAGE" "no stable Deployment $STABLE_DEPLOYMENT in $namespace to compare a canary with: the first production release goes straight to --percent 100"
  fi
  info "stable runs $stable_image"
  render_overlay canary "$namespace" "$image" "$rendered"
  require_object "$rendered" "Deployment/$CANARY_DEPLOYMENT" "deploy/overlays/canary"
  forbid_object "$rendered" "Deployment/$STABLE_DEPLOYMENT" "deploy/overlays/canary (it would replace stable's image with the canary's)"
  if [[ "$DRY_RUN" == true ]]; then
    show_diff "$namespace" "$rendered"
  fi
  kube_change apply --namespace "$namespace" -f "$rendered"
  replicas=$(deployment_field "$namespace" "$CANARY_DEPLOYMENT" '.spec.replicas')
  if [[ "${replicas:-0}" == 0 ]]; then
    kube_change scale deployment "$CANARY_DEPLOYMENT" --namespace "$namespace" --replicas "${CANARY_REPLICAS:-1}"
  fi
  wait_rollout "$namespace" "$CANARY_DEPLOYMENT" || fail_step "the canary $image did not become ready"
  set_canary_weight "$namespace" "$percent"
  info "canary at $percent%: check it with scripts-ci/monitoring/check-canary-health.sh"
else
  info "promotion: $image becomes stable and takes all production traffic (namespace $namespace)$(dry_run_note)"
  render_overlay production "$namespace" "$image" "$rendered"
  require_object "$rendered" "Deployment/$STABLE_DEPLOYMENT" "deploy/overlays/production"
  require_object "$rendered" "HTTPRoute/$HTTPROUTE_NAME" "deploy/overlays/production"
  if [[ "$DRY_RUN" == true ]]; then
    show_diff "$namespace" "$rendered"
  fi
  remember_previous_image "$namespace" "$image"
  kube_change apply --namespace "$namespace" -f "$rendered"
  wait_rollout "$namespace" "$STABLE_DEPLOYMENT" || fail_step "stable did not become ready with $image"
  set_canary_weight "$namespace" 0
  canary_replicas=$(deployment_field "$namespace" "$CANARY_DEPLOYMENT" '.spec.replicas')
  if [[ -n "$canary_replicas" && "$canary_replicas" != 0 ]]; then
    kube_change scale deployment "$CANARY_DEPLOYMENT" --namespace "$namespace" --replicas 0
  fi
  info "promoted: stable runs $image with 100% of the traffic"
fi
