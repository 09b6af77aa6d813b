# shellcheck shell=bash
# Kubernetes helpers of the deploy scripts (kubectl with its built-in Kustomize, and jq).
# Sourced after common.sh. What the scripts expect from deploy/ is in scripts-ci/README.md
# ("What the deploy scripts expect from deploy/"):
#   - overlays deploy/overlays/{staging,production,canary} (Kustomize);
#   - the stable Deployment <service> (in the staging and production overlays) and the
#     canary Deployment <service>-canary (in the canary overlay, which holds only canary
#     objects: it must not contain the stable Deployment);
#   - an HTTPRoute <service> whose rules send traffic to the Services <service> and
#     <service>-canary through weighted backendRefs;
#   - the container image written as <service> (a Kustomize image name); the scripts
#     replace it with IMAGE when they render.

DEPLOY_DIR=${DEPLOY_DIR:-$REPO_ROOT/deploy}
KUSTOMIZE_IMAGE_NAME=${KUSTOMIZE_IMAGE_NAME:-$SERVICE_NAME}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
STABLE_DEPLOYMENT=$SERVICE_NAME
CANARY_DEPLOYMENT=$SERVICE_NAME-canary
HTTPROUTE_NAME=${HTTPROUTE_NAME:-$SERVICE_NAME}
# The stable Deployment remembers the image it ran before the last deploy here.
PREVIOUS_IMAGE_ANNOTATION=scripts-ci/previous-image

# kubectl, with --context when KUBE_CONTEXT is set.
KUBECTL=(kubectl)
if [[ -n "${KUBE_CONTEXT:-}" ]]; then
  KUBECTL+=(--context "$KUBE_CONTEXT")
fi

# kube ARGS...: kubectl for reads.
kube() {
  "${KUBECTL[@]}" "$@"
}

# kube_change ARGS...: kubectl for changes; logged, and only shown under --dry-run.
kube_change() {
  mutate "${KUBECTL[@]}" "$@"
}

require_k8s_tools() {
  require_cmd kubectl "install kubectl 1.27+ (it has Kustomize built in)"
  require_cmd jq "install jq (apt-get install jq)"
}

# deploy_image [OPTION_VALUE]: the image to deploy: --image, else IMAGE, else
# $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA (the playbook's immutable tag).
deploy_image() {
  local image=${1:-${IMAGE:-}}
  if [[ -z "$image" && -n "${CI_REGISTRY_IMAGE:-}" && -n "${CI_COMMIT_SHA:-}" ]]; then
    image="$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"
  fi
  if [[ -z "$image" ]]; then
    die "$EXIT_USAGE" "no image to deploy: set IMAGE=registry/group/service:tag (or pass --image), or run in GitLab CI where CI_REGISTRY_IMAGE and CI_COMMIT_SHA are set"
  fi
  canonical_image "$image"
}

# canonical_image IMAGE: the reference as the cluster will show it: registry[:port]/path:tag,
# or registry[:port]/path@digest (a tag next to a digest is dropped, as Kustomize does).
canonical_image() {
  local image=$1 name
  name=${image%%@*}
  if [[ "$image" == *@* ]]; then
    [[ "${name##*/}" != *:* ]] || name=${name%:*}
    printf '%s@%s' "$name" "${image#*@}"
  elif [[ "${name##*/}" == *:* ]]; then
    printf '%s' "$image"
  else
    die "$EXIT_USAGE" "image '$image' has no tag or digest: deploy an immutable reference such as \$CI_REGISTRY_IMAGE:\$CI_COMMIT_SHA"
  fi
}

# render_overlay OVERLAY NAMESPACE IMAGE OUTPUT: kustomize build of deploy/overlays/OVERLAY
# with the namespace and image set, written to OUTPUT.
render_overlay() {
  local overlay=$1 namespace=$2 image=$3 output=$4
  local dir="$DEPLOY_DIR/overlays/$overlay" name tag="" digest="" expected work
  if [[ ! -f "$dir/kustomization.yaml" && ! -f "$dir/kustomization.yml" && ! -f "$dir/Kustomization" ]]; then
    die "$EXIT_USAGE" "no Kustomize overlay at $dir: the repository's deploy/ needs overlays/$overlay (or set DEPLOY_DIR)"
  fi
  expected=$(canonical_image "$image")
  name=${expected%%@*}
  if [[ "$expected" == *@* ]]; then
    digest=${expected#*@}
  else
    tag=${name##*:}
    name=${name%:*}
  fi

  # A throwaway kustomization on top of the overlay sets namespace and image without
  # touching the repository's files (Kustomize wants relative paths to other bases).
  work=$(mktemp -d "$DEPLOY_DIR/.render-XXXXXX")
  cleanup_later "$work"
  {
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n'
    printf 'resources:\n  - ../overlays/%s\n' "$overlay"
    printf 'namespace: %s\n' "$namespace"
    printf 'images:\n  - name: %s\n    newName: %s\n' "$KUSTOMIZE_IMAGE_NAME" "$name"
    if [[ -n "$digest" ]]; then
      printf '    digest: %s\n' "$digest"
    else
      printf '    newTag: "%s"\n' "$tag"
    fi
  } >"$work/kustomization.yaml"
  if ! kube kustomize "$work" >"$output"; then
    die "$EXIT_FAILED" "kubectl kustomize could not render deploy/overlays/$overlay (see the error above)"
  fi
  if ! sed -nE 's/^[ -]*image: "?([^"]*)"?$/\1/p' "$output" | grep -xF "$expected" >/dev/null; then
    die "$EXIT_USAGE" "the rendered deploy/overlays/$overlay does not run $expected: write the container image as '$KUSTOMIZE_IMAGE_NAME' in deploy/ (a Kustomize image name) or set KUSTOMIZE_IMAGE_NAME to the name used there"
  fi
  info "rendered deploy/overlays/$overlay for namespace $namespace with image $expected: $(manifest_objects "$output" | paste -sd ' ' -)"
}

# manifest_objects FILE: "Kind/name" of every object in a rendered (kustomize) manifest.
manifest_objects() {
  awk '
    function emit() { if (kind != "" && name != "") print kind "/" name; kind = ""; name = "" }
    /^---/ { emit(); next }
    /^kind: / { kind = $2 }
    /^metadata:/ { meta = 1; next }
    /^[^ ]/ { meta = 0 }
    meta && /^  name: / { name = $2; gsub(/"/, "", name) }
    END { emit() }
  ' "$1"
}

# require_object FILE KIND/NAME WHY: the rendered manifest must contain the object.
require_object() {
  if ! manifest_objects "$1" | grep -xF "$2" >/dev/null; then
    die "$EXIT_USAGE" "$3 must contain $2 (found: $(manifest_objects "$1" | paste -sd ' ' -))"
  fi
}

# forbid_object FILE KIND/NAME WHY: the rendered manifest must not contain the object.
forbid_object() {
  if manifest_objects "$1" | grep -xF "$2" >/dev/null; then
    die "$EXIT_USAGE" "$3 must not contain $2"
  fi
}

# show_diff NAMESPACE FILE: under --dry-run, what applying FILE would change (needs a cluster).
show_diff() {
  local status=0
  info "dry-run, changes that applying would make (kubectl diff):"
  kube diff --namespace "$1" -f "$2" >&2 || status=$?
  case "$status" in
    0) info "dry-run: the cluster already matches" ;;
    1) ;;
    *) warn "dry-run: kubectl diff failed (exit $status): is the cluster reachable?" ;;
  esac
}

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
