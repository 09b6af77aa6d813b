# shellcheck shell=bash disable=SC2034,SC2154 # sets variables its callers read, reads env_name, dry_run, wait they set
# The GitOps repository for the scripts that change it (sourced, never run on its own):
# deploy/gitops-promote.sh (deploy, canary, rollback) and deploy/gitops-stop-staging.sh
# (staging's on_stop action). Each change is one commit to the one file they own,
#   $GITOPS_PATH/<env>/pipeline/kustomization.yaml
# a Kustomize Component that the environment's kustomization.yaml lists under
# `components: [pipeline]`; its header comments keep the state between runs. After the push
# they wait until Argo CD reports the environment's Application Synced and Healthy at that
# commit (lib/argocd.sh). The pipeline never talks to the cluster in GitOps mode.
#
# The component patches the image of Deployment <app> (stable) and, in production, of
# Deployment <app>-canary and the weights of the HTTPRoute <app> (backendRefs[0] stable,
# backendRefs[1] canary). When staging is stopped it also sets spec.replicas to 0 on the
# Deployments <app> and <app>-*; the next promotion writes the file without that patch,
# which starts staging again.
#
# The calling script sets env_name, dry_run (true|false), wait (true|false), calls
# gitops_setup, and defines the two functions gitops_commit calls:
#   apply_change          writes the new state with write_component and sets $message, or
#                         returns without writing when there is nothing to change
#   change_failed PUSHED  Argo CD did not report PUSHED Synced and Healthy ($ARGOCD_REASON
#                         says why): what to do then; must exit

# shellcheck source=project.sh
source "$(dirname "${BASH_SOURCE[0]}")/project.sh"
# shellcheck source=argocd.sh
source "$(dirname "${BASH_SOURCE[0]}")/argocd.sh"

gitops_script="$(basename "$0" .sh)"
die() { echo "$gitops_script: $1" >&2; exit "${2:-2}"; }
log() { echo "$gitops_script: $*"; }

# gitops_setup: check the configuration, name the files and the Application of $env_name.
gitops_setup() {
  [[ -n ${GITOPS_REPO_URL:-} ]] || die "GITOPS_REPO_URL is not set: the clone URL of the GitOps repository, e.g. https://gitlab.example.com/acme/k8s-manifests.git"
  if $wait && ! $dry_run; then
    [[ -n ${ARGOCD_SERVER:-} && -n ${ARGOCD_AUTH_TOKEN:-} ]] || die "ARGOCD_SERVER and ARGOCD_AUTH_TOKEN must be set to wait for Argo CD's sync (see scripts-ci/lib/argocd.sh); --no-wait pushes without waiting"
    command -v jq >/dev/null || die "jq is not installed: the wait for Argo CD reads its API with curl and jq"
  fi
  branch="${GITOPS_BRANCH:-main}"
  app="${APP_NAME:-$SERVICE_NAME}"
  app_path="${GITOPS_PATH:-apps/$SERVICE_NAME}"
  component="$app_path/$env_name/pipeline/kustomization.yaml"
  argocd_app="${ARGOCD_APP:-$SERVICE_NAME-$env_name}"
  git_auth=()
  if [[ -n ${GITOPS_TOKEN:-} && $GITOPS_REPO_URL == https://* ]]; then
    git_auth=(-c "http.extraHeader=Authorization: Basic $(printf 'oauth2:%s' "$GITOPS_TOKEN" | base64 | tr -d '\n')")
  fi
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' EXIT
  repo="$workdir/repo"
}

git_() { git "${git_auth[@]}" "$@"; }
git_commit_() { git -C "$repo" -c user.name="${GITLAB_USER_NAME:-GitLab CI}" -c user.email="${GITLAB_USER_EMAIL:-ci@localhost}" "$@"; }

state() { # state KEY: a value from the header of the current component file
  [[ -f "$repo/$component" ]] || return 0
  sed -n "s/^# $1: //p" "$repo/$component" | head -n 1
}

image_patch() { # image_patch DEPLOYMENT IMAGE
  cat <<EOF
  - target:
      kind: Deployment
      name: $1
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/image
        value: $2
EOF
}

# write_component ACTION STABLE PREVIOUS CANARY_IMAGE WEIGHT; ACTION stop adds the replicas patch.
write_component() {
  local action="$1" stable="$2" previous="$3" canary_image="$4" weight="$5"
  mkdir -p "$(dirname "$repo/$component")"
  {
    echo "# Written by scripts-ci/deploy/$gitops_script.sh in the pipeline of $app: do not edit."
    echo "# last-action: $action"
    echo "# stable-image: $stable"
    echo "# previous-stable-image: $previous"
    if [[ $env_name == production ]]; then
      echo "# canary-image: $canary_image"
      echo "# canary-weight: $weight"
    fi
    echo "apiVersion: kustomize.config.k8s.io/v1alpha1"
    echo "kind: Component"
    echo "patches:"
    # No stable image recorded yet (first deployment through these scripts): the stable
    # Deployment keeps the image of the environment's manifests.
    [[ -z $stable ]] || image_patch "$app" "$stable"
    if [[ $env_name == production ]]; then
      [[ -z $canary_image ]] || image_patch "$app-canary" "$canary_image"
      cat <<EOF
  - target:
      kind: HTTPRoute
      name: $app
    patch: |-
      - op: replace
        path: /spec/rules/0/backendRefs/0/weight
        value: $((100 - weight))
      - op: replace
        path: /spec/rules/0/backendRefs/1/weight
        value: $weight
EOF
    fi
    # Stopped: every Deployment of the service at 0 replicas (the target's name is a
    # regular expression of the whole name); Services, HTTPRoute and configuration stay.
    if [[ $action == stop ]]; then
      cat <<EOF
  - target:
      kind: Deployment
      name: "$app|$app-.*"
    patch: |-
      - op: add
        path: /spec/replicas
        value: 0
EOF
    fi
  } >"$repo/$component"
}

# revision_contains REVISION SEEN: Argo CD synced SEEN, a later commit (someone else's
# promotion) that contains REVISION. Called by argocd_wait.
revision_contains() {
  git -C "$repo" cat-file -e "$2^{commit}" 2>/dev/null || git_ -C "$repo" fetch --quiet origin "$branch" || return 1
  git -C "$repo" merge-base --is-ancestor "$1" "$2" 2>/dev/null
}

# wait_synced REVISION: Argo CD's verdict on REVISION; exits 2 or 5 when it cannot give one.
wait_synced() {
  local code=0
  argocd_wait "$argocd_app" "$1" || code=$?
  case $code in
    0) log "$argocd_app is Synced and Healthy at ${1:0:12}"; return 0 ;;
    1) return 1 ;;
    *) die "cannot tell whether $argocd_app runs ${1:0:12} (pushed, not verified, nothing reverted): $ARGOCD_REASON" "$code" ;;
  esac
}

# gitops_commit: on the branch's head, apply_change, commit and push (retrying when someone
# pushed first), then wait for Argo CD; exits. Nothing to change: waits for Argo CD at the head.
gitops_commit() {
  local attempt pushed
  for attempt in 1 2 3 4 5; do
    rm -rf "$repo"
    git_ clone --quiet --depth 1 --branch "$branch" "$GITOPS_REPO_URL" "$repo"
    message=""
    apply_change
    if git -C "$repo" diff --quiet -- "$component" && [[ -z $(git -C "$repo" status --porcelain -- "$component") ]]; then
      log "$component already up to date: nothing to commit"
      if $wait && ! $dry_run; then
        wait_synced "$(git -C "$repo" rev-parse HEAD)" || die "$ARGOCD_REASON" 1
      fi
      exit 0
    fi
    git -C "$repo" add -- "$component"
    git_commit_ commit --quiet -m "$message" -m "Pipeline: ${CI_PIPELINE_URL:-local}" -m "Commit: ${CI_COMMIT_SHA:-unknown}"
    git -C "$repo" --no-pager show --stat --format='%h %s' HEAD
    if $dry_run; then
      git -C "$repo" --no-pager diff HEAD~1 -- "$component"
      log "dry run: not pushed"
      exit 0
    fi
    if git_ -C "$repo" push --quiet origin "HEAD:$branch"; then
      pushed="$(git -C "$repo" rev-parse HEAD)"
      log "pushed to $branch: $message (${pushed:0:12})"
      $wait || { log "--no-wait: not waiting for Argo CD"; exit 0; }
      wait_synced "$pushed" && exit 0
      change_failed "$pushed"
      exit 1
    fi
    log "push rejected (attempt $attempt/5): someone pushed first; retrying on the new head"
    sleep "$attempt"
  done
  die "could not push to $GITOPS_REPO_URL ($branch) after 5 attempts" 1
}
