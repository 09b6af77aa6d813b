#!/usr/bin/env bash
# Usage: scripts-ci/deploy/deploy-to-staging.sh [--image IMAGE] [--dry-run]
#
# Deploys IMAGE to staging: renders deploy/overlays/staging with the image and the
# staging namespace (kubectl kustomize), applies it, and waits until the Deployment
# <service> has rolled out. The image the Deployment ran before is remembered on it
# (annotation scripts-ci/previous-image), so rollback-deployment.sh --env staging can
# go back to it.
#
# Options:
#   --image IMAGE   image to deploy (default IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA)
#   --dry-run       render and show the changes (kubectl diff) without applying anything
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   IMAGE                  image reference with a tag or digest
#   K8S_NAMESPACE          [<service>-staging]
#   KUBE_CONTEXT           kubectl context to use [the current one]
#   ROLLOUT_TIMEOUT        how long to wait for the rollout [300s]
#   DEPLOY_DIR             [deploy/]    KUSTOMIZE_IMAGE_NAME  image name in deploy/ [<service>]
#
# Exit codes: 0 deployed and rolled out; 1 kubectl failed or the rollout did not
# complete in time (pods and events are printed); 2 usage or configuration error (no
# image, no overlay, manifests that do not match what the script expects); 3 kubectl or
# jq missing.
#
# Example: IMAGE=registry.example.com/acme/my-service:3f2c1a9 scripts-ci/deploy/deploy-to-staging.sh
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/k8s.sh
source "$SCRIPTS_CI_DIR/lib/k8s.sh"

image_option=""
while (($# > 0)); do
  case "$1" in
    --image) require_value "$1" "${2:-}"; image_option=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) show_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_k8s_tools
image=$(deploy_image "$image_option")
namespace=$(k8s_namespace staging)

info "deploying $image to staging (namespace $namespace)$(dry_run_note)"
rendered=$(mktemp)
cleanup_later "$rendered"
render_overlay staging "$namespace" "$image" "$rendered"
require_object "$rendered" "Deployment/$STABLE_DEPLOYMENT" "deploy/overlays/staging"

if [[ "$DRY_RUN" == true ]]; then
  show_diff "$namespace" "$rendered"
fi
remember_previous_image "$namespace" "$image"
kube_change apply --namespace "$namespace" -f "$rendered"
if ! wait_rollout "$namespace" "$STABLE_DEPLOYMENT"; then
  die "$EXIT_FAILED" "staging rollout failed; to go back: scripts-ci/deploy/rollback-deployment.sh --env staging --immediate"
fi
info "staging runs $image"
