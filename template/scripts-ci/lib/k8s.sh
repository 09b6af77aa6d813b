# shellcheck shell=bash
# Kubernetes helpers of the deploy scripts (kubectl with its built-in Kustomize, and jq).
# Sourced after common.sh. What the scripts expect from deploy/ is in scripts-ci/README.md
# ("What the deploy scripts expect from deploy/"):
#   - overlays deploy/overlays/{staging,production,canary} (Kustomize); the canary overlay
#     holds only canary objects;
#   - the container image written as <service> (a Kustomize image name); the scripts
#     replace it with IMAGE when they render.
# The objects of the workload, and what the deploy scripts do with them, are in the
# workload's library, lib/$WORKLOAD.sh: lib/http.sh (the Deployments and the HTTPRoute) or
# lib/batch.sh (the CronJobs and the Jobs run from them).

DEPLOY_DIR=${DEPLOY_DIR:-$REPO_ROOT/deploy}
KUSTOMIZE_IMAGE_NAME=${KUSTOMIZE_IMAGE_NAME:-$SERVICE_NAME}

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

# deploy_image [OPTION_VALUE]: the image to deploy: --image, else the signed digest
# $CI_REGISTRY_IMAGE@$IMAGE_DIGEST (IMAGE_DIGEST comes from build-image's dotenv report),
# else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA. In GitLab CI (GITLAB_CI=true) only a
# digest is accepted: a pipeline deploys exactly what build-image pushed and sign-image
# signed, never a tag that could be moved in between.
deploy_image() {
  local image=${1:-}
  if [[ -z "$image" && -n "${IMAGE_DIGEST:-}" ]]; then
    require_env CI_REGISTRY_IMAGE "IMAGE_DIGEST is set, and the image is \$CI_REGISTRY_IMAGE@\$IMAGE_DIGEST"
    image="$CI_REGISTRY_IMAGE@$IMAGE_DIGEST"
  fi
  if [[ -z "$image" && "${GITLAB_CI:-}" == true ]]; then
    die "$EXIT_USAGE" "$(missing_digest_message)"
  fi
  image=${image:-${IMAGE:-}}
  if [[ -z "$image" && -n "${CI_REGISTRY_IMAGE:-}" && -n "${CI_COMMIT_SHA:-}" ]]; then
    image="$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"
  fi
  if [[ -z "$image" ]]; then
    die "$EXIT_USAGE" "no image to deploy: set IMAGE=registry/group/service:tag (or pass --image), or run in GitLab CI where CI_REGISTRY_IMAGE and CI_COMMIT_SHA are set"
  fi
  image=$(canonical_image "$image") || exit
  require_digest_in_ci "$image"
  printf '%s' "$image"
}

# missing_digest_message: why a pipeline job has no digest, and what to do.
missing_digest_message() {
  printf '%s' "IMAGE_DIGEST is not set: in GitLab CI a deploy runs the digest that build-image pushed and sign-image signed, never a tag. The job must get build-image's dotenv report (image.env): list it under needs with artifacts: true (or under dependencies), and pass --image \"\$CI_REGISTRY_IMAGE@\$IMAGE_DIGEST\""
}

# require_digest_in_ci IMAGE: in GitLab CI the reference must pin a digest.
require_digest_in_ci() {
  if [[ "${GITLAB_CI:-}" == true && "$1" != *@sha256:* ]]; then
    if [[ -z "${IMAGE_DIGEST:-}" ]]; then
      die "$EXIT_USAGE" "refusing to deploy $1 by tag. $(missing_digest_message)"
    fi
    die "$EXIT_USAGE" "refusing to deploy $1 by tag: in GitLab CI deploy the signed digest, --image \"\$CI_REGISTRY_IMAGE@\$IMAGE_DIGEST\""
  fi
}

# canonical_image IMAGE: the reference as the cluster will show it: registry[:port]/path:tag,
# or registry[:port]/path@sha256:<64 hex> (a tag next to a digest is dropped, as Kustomize does).
canonical_image() {
  local image=$1 name digest
  name=${image%%@*}
  if [[ "$image" == *@* ]]; then
    digest=${image#*@}
    if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
      if [[ -z "$digest" ]]; then
        die "$EXIT_USAGE" "image '$image' ends in '@' with no digest: IMAGE_DIGEST is empty. $(missing_digest_message)"
      fi
      die "$EXIT_USAGE" "image '$image' has a malformed digest '$digest': expected sha256: and 64 hexadecimal digits"
    fi
    [[ "${name##*/}" != *:* ]] || name=${name%:*}
    printf '%s@%s' "$name" "$digest"
  elif [[ "${name##*/}" == *:* ]]; then
    printf '%s' "$image"
  else
    die "$EXIT_USAGE" "image '$image' has no tag or digest: deploy an immutable reference such as \$CI_REGISTRY_IMAGE@\$IMAGE_DIGEST"
  fi
}

# failed_release_image [OPTION_VALUE]: for a rollback, the image that failed: --image, else the
# digest of this pipeline (IMAGE_DIGEST), else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA;
# empty when none is known. In GitLab CI, a reference without a digest is refused (the
# deploys ran the digest: a tag would never match what the cluster runs).
failed_release_image() {
  local image=${1:-}
  if [[ -z "$image" && -n "${IMAGE_DIGEST:-}" && -n "${CI_REGISTRY_IMAGE:-}" ]]; then
    image="$CI_REGISTRY_IMAGE@$IMAGE_DIGEST"
  fi
  if [[ -z "$image" && "${GITLAB_CI:-}" == true ]]; then
    return 0
  fi
  image=${image:-${IMAGE:-}}
  if [[ -z "$image" && -n "${CI_REGISTRY_IMAGE:-}" && -n "${CI_COMMIT_SHA:-}" ]]; then
    image="$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"
  fi
  [[ -n "$image" ]] || return 0
  image=$(canonical_image "$image") || exit
  require_digest_in_ci "$image"
  printf '%s' "$image"
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

# fail_step IMAGE MESSAGE: a step of canary-deploy.sh failed; roll back (unless
# AUTO_ROLLBACK=false) and exit 1.
fail_step() {
  error "$2"
  if [[ "${AUTO_ROLLBACK:-true}" == true ]]; then
    warn "rolling back automatically (AUTO_ROLLBACK=true)"
    "$SCRIPTS_CI_DIR/deploy/rollback-deployment.sh" --immediate --image "$1" || error "the automatic rollback failed too: act by hand (see scripts-ci/README.md)"
  fi
  exit "$EXIT_FAILED"
}
