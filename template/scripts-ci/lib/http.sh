# shellcheck shell=bash
# Helpers of an HTTP service's scripts. Sourced after common.sh.
# - Requests, for the smoke, sanity and performance tests (curl + jq).
# - Its deployment, for the deploy scripts (sourced after k8s.sh as well): the stable
#   Deployment <service> (in the staging and production overlays) and the canary Deployment
#   <service>-canary (in the canary overlay, which must not contain the stable Deployment);
#   an HTTPRoute <service> whose rules send traffic to the Services <service> and
#   <service>-canary through weighted backendRefs. The deploy scripts' own steps are at the
#   end, each after its --help text: canary_deploy, deploy_to_staging, rollback_deployment.
#
# http_call METHOD URL [JSON_BODY]: one request; sets HTTP_STATUS (000 when nothing
# answered), HTTP_BODY and HTTP_TIME (seconds). Never fails the script by itself.
# HTTP_MAX_TIME bounds each request (seconds, default 10). With API_TOKEN set (see
# setup_api_token), every request carries `Authorization: Bearer $API_TOKEN`; the header goes
# to curl through a file descriptor, never on its command line.

# shellcheck disable=SC2034 # the results are read by the sourcing script
HTTP_STATUS="" HTTP_BODY="" HTTP_TIME=""

# shellcheck disable=SC2034
http_call() {
  local method=$1 url=$2 body=${3:-} out meta
  local -a args=(--silent --show-error --location --max-time "${HTTP_MAX_TIME:-10}"
    --request "$method" --header "Accept: application/json"
    --header "X-Request-ID: ${SCRIPT_NAME}-${CI_JOB_ID:-local}-$RANDOM"
    --write-out '%{http_code} %{time_total}')
  if [[ -n "$body" ]]; then
    args+=(--header "Content-Type: application/json" --data "$body")
  fi
  out=$(mktemp)
  if [[ -n "${API_TOKEN:-}" ]]; then
    meta=$(curl "${args[@]}" --header @<(printf 'Authorization: Bearer %s\n' "$API_TOKEN") \
      --output "$out" "$url" 2>&1) || true
  else
    meta=$(curl "${args[@]}" --output "$out" "$url" 2>&1) || true
  fi
  HTTP_BODY=$(cat "$out")
  rm -f "$out"
  HTTP_STATUS=000
  HTTP_TIME=0
  if [[ "$meta" =~ ([0-9]{3})\ ([0-9.]+)$ ]]; then
    HTTP_STATUS=${BASH_REMATCH[1]}
    HTTP_TIME=${BASH_REMATCH[2]}
  fi
  if [[ "$HTTP_STATUS" == 000 ]]; then
    # Nothing answered: keep curl's own explanation (refused, timeout, DNS, TLS).
    HTTP_BODY=$(printf '%s' "$meta" | grep '^curl:' | head -n 1)
    HTTP_BODY=${HTTP_BODY:-no answer}
  fi
}

# setup_api_token: the bearer token of the service's write and model endpoints, in API_TOKEN.
# Given as API_TOKEN (a masked CI/CD variable), or fetched here when API_TOKEN is empty and
# OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are set: the client-credentials grant at the token
# endpoint of OIDC_ISSUER's discovery document (or OIDC_TOKEN_URL), for OIDC_AUDIENCE (and
# OIDC_TOKEN_SCOPE if set). The secret goes to curl on its standard input, never on a command
# line. Exits 2 on an API_TOKEN that is not one token (a pasted newline or space), 1 when
# the issuer refuses the client.
setup_api_token() {
  if [[ -z "${API_TOKEN:-}" && -n "${OIDC_CLIENT_ID:-}" ]]; then
    [[ -n "${OIDC_CLIENT_SECRET:-}" ]] || die "$EXIT_USAGE" "OIDC_CLIENT_ID is set but OIDC_CLIENT_SECRET is not: give both, or API_TOKEN"
    local token_url=${OIDC_TOKEN_URL:-} form
    if [[ -z "$token_url" ]]; then
      http_call GET "${OIDC_ISSUER%/}/.well-known/openid-configuration"
      token_url=$(jq -r '.token_endpoint // empty' <<<"$HTTP_BODY" 2>/dev/null || true)
      [[ "$HTTP_STATUS" == 200 && -n "$token_url" ]] || die "$EXIT_FAILED" "no token endpoint in the discovery document of OIDC_ISSUER $OIDC_ISSUER: HTTP $HTTP_STATUS $(body_excerpt)"
    fi
    form=$(jq -rn '"grant_type=client_credentials&client_id=\(env.OIDC_CLIENT_ID | @uri)"
      + "&client_secret=\(env.OIDC_CLIENT_SECRET | @uri)&audience=\(env.OIDC_AUDIENCE // "" | @uri)"
      + (if (env.OIDC_TOKEN_SCOPE // "") != "" then "&scope=\(env.OIDC_TOKEN_SCOPE | @uri)" else "" end)')
    HTTP_BODY=$(printf '%s' "$form" | curl --silent --show-error --max-time "${HTTP_MAX_TIME:-10}" \
      --header "Accept: application/json" --data @- "$token_url" 2>&1) || true
    API_TOKEN=$(jq -r 'if type == "object" then .access_token // empty else empty end' <<<"$HTTP_BODY" 2>/dev/null || true)
    [[ -n "$API_TOKEN" ]] || die "$EXIT_FAILED" "the issuer gave no access token to client $OIDC_CLIENT_ID at $token_url: $(body_excerpt)"
    info "bearer token of client $OIDC_CLIENT_ID from $token_url"
  fi
  if [[ -n "${API_TOKEN:-}" && ! "$API_TOKEN" =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
    die "$EXIT_USAGE" "API_TOKEN is not a bearer token (one line of letters, digits and -._~+/=); check the CI/CD variable"
  fi
  export API_TOKEN
}

# A short, single-line excerpt of the last body for error messages.
body_excerpt() {
  printf '%s' "$HTTP_BODY" | tr '\n' ' ' | cut -c1-300
}

# jq_body FILTER [ARGS...]: run jq on the last body (exit status of jq -e).
jq_body() {
  local filter=$1
  shift
  printf '%s' "$HTTP_BODY" | jq -e "$@" "$filter" >/dev/null 2>&1
}

# ----------------------------------------------------------------- deployment

ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
STABLE_DEPLOYMENT=$SERVICE_NAME
CANARY_DEPLOYMENT=$SERVICE_NAME-canary
HTTPROUTE_NAME=${HTTPROUTE_NAME:-$SERVICE_NAME}
# The stable Deployment remembers the image it ran before the last deploy here.
PREVIOUS_IMAGE_ANNOTATION=scripts-ci/previous-image

# deployment_json NAMESPACE NAME: the Deployment as JSON, or nothing when it does not exist.
deployment_json() {
  kube get deployment "$2" --namespace "$1" --ignore-not-found -o json
}

# deployment_field NAMESPACE NAME JQ_FILTER: one field of a Deployment (empty when absent).
deployment_field() {
  local json
  json=$(deployment_json "$1" "$2") || die "$EXIT_FAILED" "cannot read Deployment $2 in namespace $1 (see the error above)"
  [[ -z "$json" ]] || jq -r "$3 // empty" <<<"$json"
}

deployment_image() {
  deployment_field "$1" "$2" '.spec.template.spec.containers[0].image'
}

# remember_previous_image NAMESPACE NEW_IMAGE: before a deploy, note on the stable
# Deployment what it runs now, so rollback-deployment.sh knows where to go back to.
remember_previous_image() {
  local namespace=$1 image=$2 current
  current=$(deployment_image "$namespace" "$STABLE_DEPLOYMENT")
  if [[ -z "$current" ]]; then
    info "first deploy of $STABLE_DEPLOYMENT in $namespace: no previous version to remember"
  elif [[ "$current" == "$image" ]]; then
    info "$STABLE_DEPLOYMENT already runs $image: the remembered previous version stays"
  else
    kube_change annotate deployment "$STABLE_DEPLOYMENT" --namespace "$namespace" --overwrite \
      "$PREVIOUS_IMAGE_ANNOTATION=$current"
  fi
}

# wait_rollout NAMESPACE DEPLOYMENT: wait until the rollout is complete; on failure show
# the pods and recent events, and return 1.
wait_rollout() {
  local namespace=$1 deployment=$2
  if [[ "$DRY_RUN" == true ]]; then
    info "dry-run, would wait for the rollout of deployment/$deployment"
    return 0
  fi
  info "waiting for deployment/$deployment in $namespace (timeout $ROLLOUT_TIMEOUT)"
  if kube rollout status "deployment/$deployment" --namespace "$namespace" --timeout "$ROLLOUT_TIMEOUT" >&2; then
    return 0
  fi
  error "deployment/$deployment did not become ready within $ROLLOUT_TIMEOUT; its pods and recent events:"
  kube get pods --namespace "$namespace" -l "app.kubernetes.io/name=$SERVICE_NAME" -o wide >&2 || true
  kube get events --namespace "$namespace" --sort-by=.lastTimestamp 2>&1 | tail -n 20 >&2 || true
  return 1
}

# set_canary_weight NAMESPACE PERCENT: HTTPRoute weights stable 100-PERCENT, canary PERCENT
# in every rule. The patch carries the route's resourceVersion, so it cannot overwrite a
# change made meanwhile. Does nothing when the weights are already right.
set_canary_weight() {
  local namespace=$1 percent=$2 route patch
  route=$(kube get httproute "$HTTPROUTE_NAME" --namespace "$namespace" --ignore-not-found -o json) ||
    die "$EXIT_FAILED" "cannot read HTTPRoute $HTTPROUTE_NAME in $namespace (see the error above)"
  if [[ -z "$route" ]]; then
    if [[ "$DRY_RUN" == true ]]; then
      info "dry-run, would set traffic to stable $((100 - percent))% / canary $percent% once HTTPRoute $HTTPROUTE_NAME exists"
      return 0
    fi
    die "$EXIT_FAILED" "no HTTPRoute $HTTPROUTE_NAME in $namespace: deploy the production overlay first (canary-deploy.sh --percent 100 on the first release) or set HTTPROUTE_NAME"
  fi
  if ! jq -e --arg stable "$STABLE_DEPLOYMENT" --arg canary "$CANARY_DEPLOYMENT" '
      (.spec.rules | length > 0) and all(.spec.rules[];
        any(.backendRefs[]?; .name == $stable) and any(.backendRefs[]?; .name == $canary))' \
    <<<"$route" >/dev/null; then
    die "$EXIT_USAGE" "every rule of HTTPRoute $HTTPROUTE_NAME needs backendRefs to both Services $STABLE_DEPLOYMENT and $CANARY_DEPLOYMENT"
  fi
  if jq -e --arg stable "$STABLE_DEPLOYMENT" --arg canary "$CANARY_DEPLOYMENT" --argjson percent "$percent" '
      all(.spec.rules[].backendRefs[] | select(.name == $stable or .name == $canary);
        (.weight // 1) == (if .name == $canary then $percent else 100 - $percent end))' \
    <<<"$route" >/dev/null; then
    info "traffic already at stable $((100 - percent))% / canary $percent%"
    return 0
  fi
  patch=$(jq -c --arg stable "$STABLE_DEPLOYMENT" --arg canary "$CANARY_DEPLOYMENT" --argjson percent "$percent" '
    {metadata: {resourceVersion: .metadata.resourceVersion},
     spec: {rules: [.spec.rules[] | .backendRefs |= map(
       if .name == $canary then .weight = $percent
       elif .name == $stable then .weight = 100 - $percent
       else . end)]}}' <<<"$route")
  kube_change patch httproute "$HTTPROUTE_NAME" --namespace "$namespace" --type merge -p "$patch"
  info "traffic: stable $((100 - percent))% / canary $percent% (HTTPRoute $HTTPROUTE_NAME)"
}

# ----------------------------------------------------------------- deploy/canary-deploy.sh

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
#   --image IMAGE   image to deploy (default $CI_REGISTRY_IMAGE@$IMAGE_DIGEST when IMAGE_DIGEST
#                   is set, else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA); in GitLab CI
#                   (GITLAB_CI=true) it must be a digest, name@sha256:...
#   --dry-run       render and show every change (kubectl diff, the traffic patch) without
#                   applying anything; reads the cluster
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   IMAGE_DIGEST           sha256:... of the image build-image pushed (its dotenv report)
#   IMAGE                  image reference with a tag or digest (outside CI)
#   K8S_NAMESPACE          [<service>-production]
#   KUBE_CONTEXT           kubectl context to use [the current one]
#   CANARY_REPLICAS        replicas of a canary that was scaled to 0 [1]
#   ROLLOUT_TIMEOUT        how long to wait for a rollout [300s]
#   AUTO_ROLLBACK          roll back when a rollout fails [true]
#   HTTPROUTE_NAME         [<service>]  DEPLOY_DIR [deploy/]  KUSTOMIZE_IMAGE_NAME [<service>]
#
# Exit codes: 0 the step is done; 1 kubectl failed or a rollout did not complete (rolled
# back unless AUTO_ROLLBACK=false); 2 usage or configuration error (no image or, in GitLab CI, no digest, no stable
# release yet for a canary, manifests that do not match what the script expects);
# 3 kubectl or jq missing.
#
# Example: scripts-ci/deploy/canary-deploy.sh --percent 5

# canary_deploy NAMESPACE IMAGE PERCENT: the step, once canary-deploy.sh checked its options.
canary_deploy() {
  local namespace=$1 image=$2 percent=$3 rendered stable_image replicas canary_replicas
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
    wait_rollout "$namespace" "$CANARY_DEPLOYMENT" || fail_step "$image" "the canary $image did not become ready"
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
    wait_rollout "$namespace" "$STABLE_DEPLOYMENT" || fail_step "$image" "stable did not become ready with $image"
    set_canary_weight "$namespace" 0
    canary_replicas=$(deployment_field "$namespace" "$CANARY_DEPLOYMENT" '.spec.replicas')
    if [[ -n "$canary_replicas" && "$canary_replicas" != 0 ]]; then
      kube_change scale deployment "$CANARY_DEPLOYMENT" --namespace "$namespace" --replicas 0
    fi
    info "promoted: stable runs $image with 100% of the traffic"
  fi
}

# ----------------------------------------------------------------- deploy/deploy-to-staging.sh

# Usage: scripts-ci/deploy/deploy-to-staging.sh [--image IMAGE] [--dry-run]
#
# Deploys IMAGE to staging: renders deploy/overlays/staging with the image and the
# staging namespace (kubectl kustomize), applies it, and waits until the Deployment
# <service> has rolled out. The image the Deployment ran before is remembered on it
# (annotation scripts-ci/previous-image), so rollback-deployment.sh --env staging can
# go back to it.
#
# Options:
#   --image IMAGE   image to deploy (default $CI_REGISTRY_IMAGE@$IMAGE_DIGEST when IMAGE_DIGEST
#                   is set, else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA); in GitLab CI
#                   (GITLAB_CI=true) it must be a digest, name@sha256:...
#   --dry-run       render and show the changes (kubectl diff) without applying anything
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   IMAGE_DIGEST           sha256:... of the image build-image pushed (its dotenv report)
#   IMAGE                  image reference with a tag or digest (outside CI)
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

# deploy_to_staging NAMESPACE IMAGE: the deploy, once deploy-to-staging.sh checked its options.
deploy_to_staging() {
  local namespace=$1 image=$2 rendered
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
}

# ----------------------------------------------------------------- deploy/rollback-deployment.sh

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
# With --image (in a pipeline $CI_REGISTRY_IMAGE@$IMAGE_DIGEST; else IMAGE or
# $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA), stable is only
# rolled back when it runs that failed image; a canary that never got promoted leaves
# stable alone.
#
# Options:
#   --immediate     do not wait for in-flight requests before scaling the canary down
#   --env ENV       production (default) or staging
#   --image FAILED  the image that failed (default $CI_REGISTRY_IMAGE@$IMAGE_DIGEST when
#                   IMAGE_DIGEST is set, else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA);
#                   in GitLab CI it must be a digest: without one, traffic and canary are
#                   rolled back, stable is left alone and the script exits 2
#   --dry-run       show every change without making it; reads the cluster
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   K8S_NAMESPACE [<service>-<env>]  KUBE_CONTEXT [current]  ROLLOUT_TIMEOUT [300s]
#   DRAIN_SECONDS [30]               HTTPROUTE_NAME [<service>]
#
# Exit codes: 0 rolled back (or nothing left to undo); 1 kubectl failed or stable did not
# become ready on the previous version; 2 usage error, or no failed digest in GitLab CI
# (stable left alone); 3 kubectl or jq missing.
#
# Example: scripts-ci/deploy/rollback-deployment.sh --immediate

# rollback_deployment ENV FAILED_IMAGE FAILED_UNKNOWN IMMEDIATE DRAIN_SECONDS: the rollback,
# once rollback-deployment.sh checked its options (FAILED_UNKNOWN, IMMEDIATE: true or false).
rollback_deployment() {
  local env_name=$1 failed_image=$2 failed_unknown=$3 immediate=$4 drain=$5
  local namespace route canary_replicas current previous container
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
  if [[ "$failed_unknown" == true ]]; then
    error "stable runs $current and stays as it is: without the failed digest this job cannot tell whether that is the failed release (see above)"
  elif [[ -z "$current" ]]; then
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
}
