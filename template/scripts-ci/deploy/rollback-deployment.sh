#!/usr/bin/env bash
# Usage: scripts-ci/deploy/rollback-deployment.sh [--immediate] [--env ENV] [--image FAILED] [--dry-run]
#
# Puts the previous version back and sends all traffic to it. Safe to run more than once:
# each step first looks at what the cluster runs and does only what is still needed.
#   1. traffic: HTTPRoute <service> weights back to stable 100% / canary 0%
#   2. canary: Deployment <service>-canary scaled to 0 (after DRAIN_SECONDS unless
#      --immediate, so requests in flight on the canary can finish)
#   3. stable: if the last deploy promoted a new image, the Deployment <service> goes back
#      to the image it ran before (annotation scripts-ci/previous-image, written by the
#      deploy scripts) and the rollout is awaited. Unlike `kubectl rollout undo`, a second
#      run does not flip back to the failed version.
# With --image (or IMAGE / $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA in a pipeline), stable is only
# rolled back when it runs that failed image; a canary that never got promoted leaves
# stable alone.
#
# Options:
#   --immediate     do not wait for in-flight requests before scaling the canary down
#   --env ENV       production (default) or staging
#   --image FAILED  the image that failed (default IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA)
#   --dry-run       show every change without making it; reads the cluster
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   K8S_NAMESPACE [<service>-<env>]  KUBE_CONTEXT [current]  ROLLOUT_TIMEOUT [300s]
#   DRAIN_SECONDS [30]               HTTPROUTE_NAME [<service>]
#
# Exit codes: 0 rolled back (or nothing left to undo); 1 kubectl failed or stable did not
# become ready on the previous version; 2 usage error; 3 kubectl or jq missing.
#
# Example: scripts-ci/deploy/rollback-deployment.sh --immediate
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"

immediate=false
env_name=production
failed_image=${IMAGE:-}
if [[ -z "$failed_image" && -n "${CI_REGISTRY_IMAGE:-}" && -n "${CI_COMMIT_SHA:-}" ]]; then
  failed_image="$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"
fi
while (($# > 0)); do
  case "$1" in
    --immediate) immediate=true; shift ;;
    --env) require_value "$1" "${2:-}"; env_name=$2; shift 2 ;;
    --image) require_value "$1" "${2:-}"; failed_image=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
if [[ -n "$failed_image" ]]; then
  failed_image=$(canonical_image "$failed_image")
fi
env_name=$(normalize_env "$env_name")
[[ "$env_name" != local ]] || usage_error "there is nothing to roll back locally: use --env production or staging"
drain=${DRAIN_SECONDS:-30}
[[ "$drain" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "DRAIN_SECONDS must be a whole number of seconds, got '$drain'"
require_k8s_tools
namespace=$(k8s_namespace "$env_name")
info "rolling back $SERVICE_NAME in $env_name (namespace $namespace)${failed_image:+, failed image $failed_image}$(dry_run_note)"

# 1. Traffic back to stable.
route=$(kube get httproute "$HTTPROUTE_NAME" --namespace "$namespace" --ignore-not-found -o name) ||
  die "$EXIT_FAILED" "cannot read HTTPRoute $HTTPROUTE_NAME in $namespace (see the error above): is the cluster reachable?"
if [[ -n "$route" ]]; then
  set_canary_weight "$namespace" 0
else
  info "no HTTPRoute $HTTPROUTE_NAME in $namespace: no traffic split to undo"
fi

# 2. Canary down.
canary_replicas=$(deployment_field "$namespace" "$CANARY_DEPLOYMENT" '.spec.replicas')
if [[ -z "$canary_replicas" ]]; then
  info "no Deployment $CANARY_DEPLOYMENT in $namespace: no canary to stop"
elif [[ "$canary_replicas" == 0 ]]; then
  info "$CANARY_DEPLOYMENT is already scaled to 0"
else
  if [[ "$immediate" != true && "$drain" -gt 0 && "$DRY_RUN" != true ]]; then
    info "letting requests in flight on the canary finish (${drain}s; --immediate skips this)"
    sleep "$drain"
  fi
  kube_change scale deployment "$CANARY_DEPLOYMENT" --namespace "$namespace" --replicas 0
fi

# 3. Stable back to its previous image, if the failed release reached it.
current=$(deployment_image "$namespace" "$STABLE_DEPLOYMENT")
previous=$(deployment_field "$namespace" "$STABLE_DEPLOYMENT" ".metadata.annotations[\"$PREVIOUS_IMAGE_ANNOTATION\"]")
if [[ -z "$current" ]]; then
  warn "no Deployment $STABLE_DEPLOYMENT in $namespace: nothing to roll back on stable"
elif [[ -z "$previous" ]]; then
  info "stable runs $current and no previous version is recorded: stable stays as it is"
elif [[ "$previous" == "$current" ]]; then
  info "stable already runs the previous version $current: nothing to undo"
elif [[ -n "$failed_image" && "$current" != "$failed_image" ]]; then
  info "stable runs $current, not the failed $failed_image: stable stays as it is"
else
  container=$(deployment_field "$namespace" "$STABLE_DEPLOYMENT" '.spec.template.spec.containers[0].name')
  info "stable: $current -> $previous"
  kube_change set image "deployment/$STABLE_DEPLOYMENT" --namespace "$namespace" "$container=$previous"
  kube_change annotate deployment "$STABLE_DEPLOYMENT" --namespace "$namespace" --overwrite \
    "scripts-ci/rolled-back-from=$current"
  wait_rollout "$namespace" "$STABLE_DEPLOYMENT" ||
    die "$EXIT_FAILED" "stable did not become ready on $previous either: look at the pods and events above, then at the runbook"
fi
info "rollback done: all traffic on stable ($(deployment_image "$namespace" "$STABLE_DEPLOYMENT"))"
