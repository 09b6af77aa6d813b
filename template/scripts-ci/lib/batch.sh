# shellcheck shell=bash
# Batch helpers of the deploy scripts: the CronJobs of deploy/ and the Jobs run from them.
# Sourced after common.sh and k8s.sh. deploy/ has the CronJob <service> (staging and
# production overlays) and the suspended CronJob <service>-canary (canary overlay, which must
# not contain the stable CronJob). The deploy scripts' own steps are at the end, each after
# its --help text: canary_deploy, deploy_to_staging, rollback_deployment.
#
# A Job is always created from a live CronJob, so it
# runs exactly what the cluster would run at the next schedule:
#   kubectl create job NAME --from=cronjob/CRON --dry-run=client -o json   (read the template)
#   | jq (PIPELINE_SHARE on container app, args = the command, label scripts-ci/run)
#   | kubectl create -f -
# then `kubectl get job NAME -o json` is polled until the Job is Complete or Failed, and
# `kubectl logs job/NAME` is printed. NAME is deterministic (CronJob, command, share, image
# tag), so a retried CI job finds the Job of its first attempt and replaces it once finished.

STABLE_CRONJOB=$SERVICE_NAME
# The canary step's template (suspended: never scheduled), run by canary_deploy.
CANARY_CRONJOB=$SERVICE_NAME-canary
# The stable CronJob remembers the image it ran before the last deploy here.
PREVIOUS_IMAGE_ANNOTATION=scripts-ci/previous-image
JOB_CONTAINER=${JOB_CONTAINER:-app}
JOB_TIMEOUT=${JOB_TIMEOUT:-3600s}
JOB_POLL_SECONDS=${JOB_POLL_SECONDS:-10}
# The Job label that says which script step created it (staging, canary, promotion, ...).
RUN_LABEL=scripts-ci/run

# cronjob_field NAMESPACE NAME JQ_FILTER: one field of a CronJob (empty when it does not exist).
cronjob_field() {
  local json
  json=$(kube get cronjob "$2" --namespace "$1" --ignore-not-found -o json) ||
    die "$EXIT_FAILED" "cannot read CronJob $2 in namespace $1 (see the error above): is the cluster reachable?"
  [[ -z "$json" ]] || jq -r "$3 // empty" <<<"$json"
}

# cronjob_image NAMESPACE NAME: the image of the CronJob's container JOB_CONTAINER (or its first).
cronjob_image() {
  cronjob_field "$1" "$2" "[.spec.jobTemplate.spec.template.spec.containers[]
    | select(.name == \"$JOB_CONTAINER\")][0].image // .spec.jobTemplate.spec.template.spec.containers[0].image"
}

# remember_previous_cronjob_image NAMESPACE NEW_IMAGE: before a deploy, note on the stable
# CronJob what it runs now, so rollback-deployment.sh knows where to go back to.
remember_previous_cronjob_image() {
  local namespace=$1 image=$2 current
  current=$(cronjob_image "$namespace" "$STABLE_CRONJOB")
  if [[ -z "$current" ]]; then
    info "first deploy of CronJob $STABLE_CRONJOB in $namespace: no previous version to remember"
  elif [[ "$current" == "$image" ]]; then
    info "CronJob $STABLE_CRONJOB already runs $image: the remembered previous version stays"
  else
    kube_change annotate cronjob "$STABLE_CRONJOB" --namespace "$namespace" --overwrite \
      "$PREVIOUS_IMAGE_ANNOTATION=$current"
  fi
}

# require_suspended FILE CRONJOB WHY: the rendered CronJob must have spec.suspend: true.
require_suspended() {
  if ! awk -v name="$2" '
      /^---/ { cron = 0; named = 0; suspended = 0 }
      /^kind: CronJob$/ { cron = 1 }
      /^  name: / { if ($2 == name) named = 1 }
      /^  suspend: true$/ { suspended = 1 }
      cron && named && suspended { found = 1 }
      END { exit !found }' "$1"; then
    die "$EXIT_USAGE" "$3: CronJob $2 must have spec.suspend: true (it is only the template of the canary Jobs; unsuspended, Kubernetes would also run it on its schedule)"
  fi
}

# share_of_percent N: the PIPELINE_SHARE of a canary step of N% (5 -> 0.05, 100 -> 1).
share_of_percent() {
  awk -v percent="$1" 'BEGIN { printf "%g", percent / 100 }'
}

# validate_share S: a share of the data, above 0 and at most 1; usage error otherwise.
validate_share() {
  if [[ ! "$1" =~ ^(0?\.[0-9]+|[01](\.[0-9]+)?)$ ]] || ! awk -v s="$1" 'BEGIN { exit !(s > 0 && s <= 1) }'; then
    usage_error "invalid share '$1': use a number above 0 and at most 1, e.g. 0.05 or 1"
  fi
}

# job_name CRONJOB PURPOSE SHARE IMAGE: a Job name that is the same for every attempt of the
# same step: <cronjob>-<purpose>[-p<percent>]-<image tag or digest>, at most 63 characters.
job_name() {
  local cron=$1 purpose=$2 share=$3 image=$4 ref suffix name max
  if [[ "$image" == *@* ]]; then
    ref=${image#*@}
    ref=${ref#*:}
  else
    ref=${image##*:}
  fi
  ref=$(tr -c 'a-z0-9\n' '-' <<<"${ref,,}")
  ref=${ref:0:12}
  suffix="-${purpose,,}"
  if [[ -n "$share" ]]; then
    suffix+="-p$(awk -v s="$share" 'BEGIN { printf "%g", s * 100 }' | tr '.' '-')"
  fi
  suffix="$(tr -c 'a-z0-9\n-' '-' <<<"$suffix")${ref:+-$ref}"
  max=$((63 - $(printf '%s' "$suffix" | wc -c)))
  name=${cron:0:max}
  name="${name%-}$suffix"
  printf '%s' "${name%-}"
}

# job_state NAMESPACE NAME: complete | failed | running | absent.
job_state() {
  local json
  json=$(kube get job "$2" --namespace "$1" --ignore-not-found -o json) ||
    die "$EXIT_FAILED" "cannot read Job $2 in namespace $1 (see the error above): is the cluster reachable?"
  if [[ -z "$json" ]]; then
    printf 'absent'
    return 0
  fi
  jq -r '[.status.conditions[]? | select(.status == "True") | .type] as $done
    | if ($done | index("Complete")) then "complete"
      elif ($done | index("Failed")) then "failed"
      else "running" end' <<<"$json"
}

# clear_finished_job NAMESPACE NAME: a Job of this name left by an earlier attempt of the same
# step is deleted when it has finished; one still running stops the script.
clear_finished_job() {
  local namespace=$1 name=$2 state
  state=$(job_state "$namespace" "$name")
  case "$state" in
    absent) ;;
    complete | failed)
      info "Job $name exists from an earlier attempt ($state): deleting it to run again"
      kube_change delete job "$name" --namespace "$namespace" --cascade=foreground --wait=true ||
        die "$EXIT_FAILED" "could not delete the finished Job $name (see the error above)"
      ;;
    *)
      die "$EXIT_FAILED" "Job $name from an earlier attempt is still running in $namespace: wait for it (kubectl get job $name --namespace $namespace) or stop it (kubectl delete job $name --namespace $namespace), then retry"
      ;;
  esac
}

# job_manifest CRONJOB NAMESPACE NAME PURPOSE SHARE OUTPUT [COMMAND...]: the Job CRONJOB would
# run, as JSON in OUTPUT, with PIPELINE_SHARE=SHARE (when not empty) and args COMMAND (when
# given) on container JOB_CONTAINER, labelled RUN_LABEL=PURPOSE and with the pod's track and
# app.kubernetes.io/name labels.
job_manifest() {
  local cron=$1 namespace=$2 name=$3 purpose=$4 share=$5 output=$6 template arg command='[]'
  shift 6
  for arg in "$@"; do
    command=$(jq -c --arg arg "$arg" '. + [$arg]' <<<"$command")
  done
  template=$(kube create job "$name" --from="cronjob/$cron" --namespace "$namespace" --dry-run=client -o json) ||
    die "$EXIT_FAILED" "cannot read CronJob $cron in $namespace to create a Job from it (see the error above): deploy it first (deploy/overlays/*) or set K8S_NAMESPACE"
  if ! jq -e --arg container "$JOB_CONTAINER" 'any(.spec.template.spec.containers[]; .name == $container)' \
    <<<"$template" >/dev/null; then
    die "$EXIT_USAGE" "CronJob $cron has no container named '$JOB_CONTAINER': name the pipeline's container 'app' in deploy/ or set JOB_CONTAINER"
  fi
  jq --arg container "$JOB_CONTAINER" --arg share "$share" --arg run_label "$RUN_LABEL" \
    --arg purpose "$purpose" --arg pipeline "${CI_PIPELINE_URL:-}" --argjson command "$command" '
    (.spec.template.metadata.labels // {} | with_entries(select(.key == "track"
        or .key == "app.kubernetes.io/name"))) as $inherited
    | .metadata.labels = ((.metadata.labels // {}) + $inherited + {($run_label): $purpose})
    | .spec.template.metadata.labels = ((.spec.template.metadata.labels // {}) + {($run_label): $purpose})
    | if $pipeline != "" then .metadata.annotations["scripts-ci/pipeline"] = $pipeline else . end
    | .spec.template.spec.containers |= map(if .name != $container then . else
        (if $share != "" then
           .env = ([.env[]? | select(.name != "PIPELINE_SHARE")] + [{name: "PIPELINE_SHARE", value: $share}])
         else . end)
        | (if $command != [] then .args = $command else . end)
      end)' <<<"$template" >"$output" || die "$EXIT_FAILED" "could not edit the Job built from cronjob/$cron (see the jq error above)"
}

# wait_job NAMESPACE NAME TIMEOUT_SECONDS: poll the Job until it is Complete (0) or Failed,
# or the timeout passes (1).
wait_job() {
  local namespace=$1 name=$2 timeout=$3 deadline state
  deadline=$((SECONDS + timeout))
  info "waiting for Job $name in $namespace (timeout ${timeout}s)"
  while true; do
    state=$(job_state "$namespace" "$name")
    case "$state" in
      complete) info "Job $name completed"; return 0 ;;
      failed)
        error "Job $name failed: $(kube get job "$name" --namespace "$namespace" -o json |
          jq -r '[.status.conditions[]? | select(.type == "Failed") | "\(.reason // "") \(.message // "")"] | join("; ")')"
        return 1
        ;;
      absent) error "Job $name disappeared while it ran (deleted by someone else?)"; return 1 ;;
    esac
    if ((SECONDS >= deadline)); then
      error "Job $name did not finish within ${timeout}s (still running: stop it with kubectl delete job $name --namespace $namespace, or raise JOB_TIMEOUT / --timeout)"
      return 1
    fi
    sleep "$JOB_POLL_SECONDS"
  done
}

# show_job_logs NAMESPACE NAME: the Job's logs on stdout.
show_job_logs() {
  printf -- '----- logs of job/%s -----\n' "$2"
  kube logs "job/$2" --namespace "$1" || warn "no logs for job/$2 (its pod may not have started)"
  printf -- '----- end of logs of job/%s -----\n' "$2"
}

# show_job_trouble NAMESPACE NAME: the Job's pods and the namespace's recent events (stderr).
show_job_trouble() {
  error "pods of job/$2 and recent events in $1:"
  kube get pods --namespace "$1" -l "job-name=$2" -o wide >&2 || true
  kube get events --namespace "$1" --sort-by=.lastTimestamp 2>&1 | tail -n 20 >&2 || true
}

# run_job CRONJOB NAMESPACE PURPOSE SHARE TIMEOUT IMAGE [COMMAND...]: one Job from the live
# CronJob, which must run IMAGE (empty: whatever it runs), waited on, logs printed. Returns 0 when it completed, 1 when it failed or timed out; exits
# when it cannot even start the Job. Under --dry-run shows the Job it would create and
# changes nothing. (Called as `run_job ... || ...`, where `set -e` does not apply: every
# command in here that can fail is checked.)
run_job() {
  local cron=$1 namespace=$2 purpose=$3 share=$4 timeout=$5 image=$6 live name manifest args
  shift 6
  live=$(cronjob_image "$namespace" "$cron")
  if [[ -z "$live" ]]; then
    if [[ "$DRY_RUN" == true ]]; then
      info "dry-run, would run a Job from cronjob/$cron once it exists in $namespace${share:+ with PIPELINE_SHARE=$share}${1:+, command: $(quote "$@")}"
      return 0
    fi
    die "$EXIT_FAILED" "no CronJob $cron in $namespace to run a Job from: deploy it first (deploy/overlays/*) or set K8S_NAMESPACE"
  fi
  if [[ -n "$image" && "$live" != "$image" ]]; then
    [[ "$DRY_RUN" == true ]] ||
      die "$EXIT_FAILED" "CronJob $cron runs $live, not $image: was it changed meanwhile? Look at kubectl get cronjob $cron --namespace $namespace -o yaml, then run the step again"
    info "dry-run: CronJob $cron runs $live now; once applied, the Job below would run $image"
  fi
  image=${image:-$live}
  name=$(job_name "$cron" "$purpose" "$share" "$image")
  manifest=$(mktemp)
  cleanup_later "$manifest"
  job_manifest "$cron" "$namespace" "$name" "$purpose" "$share" "$manifest" "$@"
  args=$(jq -c --arg container "$JOB_CONTAINER" \
    '[.spec.template.spec.containers[] | select(.name == $container) | .args // "the CronJob'"'"'s"][0]' "$manifest")
  info "Job $name from cronjob/$cron: image $image, args $args${share:+, PIPELINE_SHARE=$share}"
  if [[ "$DRY_RUN" == true ]]; then
    [[ "$(job_state "$namespace" "$name")" == absent ]] ||
      info "dry-run, would first delete the finished Job $name of an earlier attempt"
    mutate "${KUBECTL[@]}" create --namespace "$namespace" -f -
    info "dry-run, would wait for Job $name and print its logs"
    return 0
  fi
  clear_finished_job "$namespace" "$name"
  kube_change create --namespace "$namespace" -f - <"$manifest" ||
    die "$EXIT_FAILED" "could not create Job $name in $namespace (see the error above)"
  if wait_job "$namespace" "$name" "$timeout"; then
    show_job_logs "$namespace" "$name"
    return 0
  fi
  show_job_logs "$namespace" "$name"
  show_job_trouble "$namespace" "$name"
  return 1
}

# ----------------------------------------------------------------- deploy/canary-deploy.sh

# Usage: scripts-ci/deploy/canary-deploy.sh --percent N [--image IMAGE] [--dry-run]
#
# One step of the progressive production rollout of the batch (the playbook's 5 -> 25 ->
# 50 -> 100), where N% is the share of the production data the new version runs on.
#   N < 100   applies deploy/overlays/canary with IMAGE (the suspended CronJob
#             <service>-canary: never scheduled, only the template of the canary Jobs),
#             then runs one Job from it with PIPELINE_SHARE=N/100 and waits for it. The run
#             prepares, trains, evaluates and checks on that share; below 100% it registers
#             nothing. The stable CronJob <service> is not touched.
#   N = 100   promotes: remembers the stable CronJob's current image (for rollback), applies
#             deploy/overlays/production with IMAGE (the CronJob <service> now runs it on its
#             schedule), then runs one full Job from it now (PIPELINE_SHARE=1), which
#             registers the model when tracking is on.
# The Job's logs are printed. A failed or timed-out Job fails the step and rolls back on its
# own (rollback-deployment.sh --immediate; AUTO_ROLLBACK=false turns that off).
#
# Options:
#   --percent N     share of the production data for the new version, 1-100 (required)
#   --image IMAGE   image to deploy (default $CI_REGISTRY_IMAGE@$IMAGE_DIGEST when IMAGE_DIGEST
#                   is set, else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA); in GitLab CI
#                   (GITLAB_CI=true) it must be a digest, name@sha256:...
#   --dry-run       render and show every change (kubectl diff, the Job) without applying
#                   anything; reads the cluster
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   IMAGE_DIGEST           sha256:... of the image build-image pushed (its dotenv report)
#   IMAGE                  image reference with a tag or digest (outside CI)
#   K8S_NAMESPACE          [<service>-production]
#   KUBE_CONTEXT           kubectl context to use [the current one]
#   JOB_TIMEOUT            how long to wait for the run [3600s]
#   AUTO_ROLLBACK          roll back when the run fails [true]
#   JOB_POLL_SECONDS [10]  JOB_CONTAINER [app]  DEPLOY_DIR [deploy/]  KUSTOMIZE_IMAGE_NAME [<service>]
#
# Exit codes: 0 the step's run succeeded; 1 kubectl failed, or the run failed or did not
# finish in time (rolled back unless AUTO_ROLLBACK=false); 2 usage or configuration error
# (no image or, in GitLab CI, no digest; manifests that do not match what the script expects); 3 kubectl or jq missing.
#
# Example: scripts-ci/deploy/canary-deploy.sh --percent 5

# canary_deploy NAMESPACE IMAGE PERCENT: the step, once canary-deploy.sh checked its options.
canary_deploy() {
  local namespace=$1 image=$2 percent=$3 timeout_seconds share rendered stable_image
  timeout_seconds=$(duration_seconds "$JOB_TIMEOUT")
  share=$(share_of_percent "$percent")
  rendered=$(mktemp)
  cleanup_later "$rendered"
  if ((percent < 100)); then
    info "canary step: $image runs on $percent% of the production data (namespace $namespace)$(dry_run_note)"
    stable_image=$(cronjob_image "$namespace" "$STABLE_CRONJOB")
    info "stable CronJob $STABLE_CRONJOB runs ${stable_image:-nothing yet (first release)}; it stays as it is"
    render_overlay canary "$namespace" "$image" "$rendered"
    require_object "$rendered" "CronJob/$CANARY_CRONJOB" "deploy/overlays/canary"
    forbid_object "$rendered" "CronJob/$STABLE_CRONJOB" "deploy/overlays/canary (it would replace stable's image with the canary's)"
    require_suspended "$rendered" "$CANARY_CRONJOB" "deploy/overlays/canary"
    if [[ "$DRY_RUN" == true ]]; then
      show_diff "$namespace" "$rendered"
    fi
    kube_change apply --namespace "$namespace" -f "$rendered"
    run_job "$CANARY_CRONJOB" "$namespace" step "$share" "$timeout_seconds" "$image" ||
      fail_step "$image" "the canary run of $image on $percent% of the data failed (logs above)"
    info "canary at $percent%: the run on PIPELINE_SHARE=$share passed"
  else
    info "promotion: $image becomes the stable CronJob and runs on all the production data (namespace $namespace)$(dry_run_note)"
    render_overlay production "$namespace" "$image" "$rendered"
    require_object "$rendered" "CronJob/$STABLE_CRONJOB" "deploy/overlays/production"
    if [[ "$DRY_RUN" == true ]]; then
      show_diff "$namespace" "$rendered"
    fi
    remember_previous_cronjob_image "$namespace" "$image"
    kube_change apply --namespace "$namespace" -f "$rendered"
    run_job "$STABLE_CRONJOB" "$namespace" release "$share" "$timeout_seconds" "$image" ||
      fail_step "$image" "the full production run of $image failed (logs above)"
    info "promoted: CronJob $STABLE_CRONJOB runs $image, and its first full run passed"
  fi
}

# ----------------------------------------------------------------- deploy/deploy-to-staging.sh

# Usage: scripts-ci/deploy/deploy-to-staging.sh [--image IMAGE] [--dry-run]
#
# Deploys IMAGE to staging and runs the pipeline once there: renders deploy/overlays/staging
# with the image and the staging namespace (kubectl kustomize), applies it (the CronJob
# <service>, which staging's configuration runs on a PIPELINE_SHARE=0.05 sample), then runs
# one Job from that CronJob now and waits for it. Staging passes when that sample run passes
# its checks; the Job's logs are printed either way. The image the CronJob ran before is
# remembered on it (annotation scripts-ci/previous-image), so rollback-deployment.sh --env
# staging can go back to it.
#
# Options:
#   --image IMAGE   image to deploy (default $CI_REGISTRY_IMAGE@$IMAGE_DIGEST when IMAGE_DIGEST
#                   is set, else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA); in GitLab CI
#                   (GITLAB_CI=true) it must be a digest, name@sha256:...
#   --dry-run       render and show the changes (kubectl diff, the Job) without applying anything
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   IMAGE_DIGEST           sha256:... of the image build-image pushed (its dotenv report)
#   IMAGE                  image reference with a tag or digest (outside CI)
#   K8S_NAMESPACE          [<service>-staging]
#   KUBE_CONTEXT           kubectl context to use [the current one]
#   JOB_TIMEOUT            how long to wait for the staging run [3600s]
#   JOB_POLL_SECONDS [10]  JOB_CONTAINER [app]
#   DEPLOY_DIR             [deploy/]    KUSTOMIZE_IMAGE_NAME  image name in deploy/ [<service>]
#
# Exit codes: 0 deployed and the staging run succeeded; 1 kubectl failed, or the run failed
# or did not finish in time (logs, pods and events are printed); 2 usage or configuration
# error (no image or, in GitLab CI, no digest, no overlay, manifests that do not match what the script expects);
# 3 kubectl or jq missing.
#
# Example: IMAGE=registry.example.com/acme/my-service:3f2c1a9 scripts-ci/deploy/deploy-to-staging.sh

# deploy_to_staging NAMESPACE IMAGE: the deploy, once deploy-to-staging.sh checked its options.
deploy_to_staging() {
  local namespace=$1 image=$2 timeout_seconds rendered
  timeout_seconds=$(duration_seconds "$JOB_TIMEOUT")

  info "deploying $image to staging (namespace $namespace)$(dry_run_note)"
  rendered=$(mktemp)
  cleanup_later "$rendered"
  render_overlay staging "$namespace" "$image" "$rendered"
  require_object "$rendered" "CronJob/$STABLE_CRONJOB" "deploy/overlays/staging"

  if [[ "$DRY_RUN" == true ]]; then
    show_diff "$namespace" "$rendered"
  fi
  remember_previous_cronjob_image "$namespace" "$image"
  kube_change apply --namespace "$namespace" -f "$rendered"
  if ! run_job "$STABLE_CRONJOB" "$namespace" staging "" "$timeout_seconds" "$image"; then
    die "$EXIT_FAILED" "the staging run of $image failed (logs above); to go back: scripts-ci/deploy/rollback-deployment.sh --env staging --immediate"
  fi
  info "staging runs $image: the sample run passed"
}

# ----------------------------------------------------------------- deploy/rollback-deployment.sh

# Usage: scripts-ci/deploy/rollback-deployment.sh [--immediate] [--env ENV] [--image FAILED] [--dry-run]
#
# Puts the previous version of the batch back. Safe to run more than once: each step first
# looks at what the cluster runs and does only what is still needed.
#   1. runs: running Jobs whose pods are labelled track=canary are deleted (after waiting up to
#      DRAIN_SECONDS for them to finish, unless --immediate), and so are running Jobs of the
#      failed image; finished Jobs stay, with their logs, until their TTL.
#   2. stable: if the last deploy promoted a new image, the CronJob <service> goes back to
#      the image it ran before (annotation scripts-ci/previous-image, written by the deploy
#      scripts); its next scheduled run uses it. A second run does not flip back to the
#      failed version.
# With --image (in a pipeline $CI_REGISTRY_IMAGE@$IMAGE_DIGEST; else IMAGE or
# $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA), the CronJob is
# only rolled back when it runs that failed image; a canary that never got promoted leaves
# stable alone. The model registry's alias is rolled back separately:
# scripts-ci/deploy/run-batch-job.sh --env production -- rollback
#
# Options:
#   --immediate     delete running canary Jobs at once instead of letting them finish
#   --env ENV       production (default) or staging
#   --image FAILED  the image that failed (default $CI_REGISTRY_IMAGE@$IMAGE_DIGEST when
#                   IMAGE_DIGEST is set, else IMAGE, else $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA);
#                   in GitLab CI it must be a digest: without one, traffic and canary are
#                   rolled back, stable is left alone and the script exits 2
#   --dry-run       show every change without making it; reads the cluster
#   -h, --help      show this help
#
# Environment (defaults in brackets):
#   K8S_NAMESPACE [<service>-<env>]  KUBE_CONTEXT [current]  DRAIN_SECONDS [30]
#   JOB_POLL_SECONDS [10]            JOB_CONTAINER [app]
#
# Exit codes: 0 rolled back (or nothing left to undo); 1 kubectl failed; 2 usage error,
# or no failed digest in GitLab CI (stable left alone); 3 kubectl or jq missing.
#
# Example: scripts-ci/deploy/rollback-deployment.sh --immediate

# running_jobs NAMESPACE FAILED_IMAGE: names of this service's unfinished Jobs that are canary
# runs or run the failed image, one a line.
running_jobs() {
  local json
  json=$(kube get jobs --namespace "$1" -o json) ||
    die "$EXIT_FAILED" "cannot list the Jobs in $1 (see the error above): is the cluster reachable?"
  jq -r --arg failed "$2" --arg app "$SERVICE_NAME" '.items[]
    | (.spec.template.metadata.labels // {}) as $pod
    | select($pod["app.kubernetes.io/name"] == $app)
    | select([.status.conditions[]? | select(.status == "True") | .type]
        | (index("Complete") or index("Failed")) | not)
    | select($pod.track == "canary"
        or ($failed != "" and any(.spec.template.spec.containers[]; .image == $failed)))
    | .metadata.name' <<<"$json"
}

# rollback_deployment ENV FAILED_IMAGE FAILED_UNKNOWN IMMEDIATE DRAIN_SECONDS: the rollback,
# once rollback-deployment.sh checked its options (FAILED_UNKNOWN, IMMEDIATE: true or false).
rollback_deployment() {
  local env_name=$1 failed_image=$2 failed_unknown=$3 immediate=$4 drain=$5
  local namespace jobs job deadline current previous
  [[ "$JOB_POLL_SECONDS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$EXIT_USAGE" "JOB_POLL_SECONDS must be a number of seconds, got '$JOB_POLL_SECONDS'"
  require_k8s_tools
  namespace=$(k8s_namespace "$env_name")
  info "rolling back $SERVICE_NAME in $env_name (namespace $namespace)${failed_image:+, failed image $failed_image}$(dry_run_note)"

  # 1. Runs of the failed version stop.
  jobs=$(running_jobs "$namespace" "$failed_image")
  if [[ -z "$jobs" ]]; then
    info "no canary Job and no Job of the failed image is running in $namespace"
  else
    if [[ "$immediate" != true && "$drain" -gt 0 && "$DRY_RUN" != true ]]; then
      info "letting running Jobs finish (up to ${drain}s; --immediate skips this): $(paste -sd ' ' - <<<"$jobs")"
      deadline=$((SECONDS + drain))
      while [[ -n "$jobs" ]] && ((SECONDS < deadline)); do
        sleep "$JOB_POLL_SECONDS"
        jobs=$(running_jobs "$namespace" "$failed_image")
      done
    fi
    while read -r job; do
      [[ -z "$job" ]] || kube_change delete job "$job" --namespace "$namespace" --ignore-not-found --cascade=foreground --wait=true
    done <<<"$jobs"
  fi

  # 2. The stable CronJob back to its previous image, if the failed release reached it.
  current=$(cronjob_image "$namespace" "$STABLE_CRONJOB")
  previous=$(cronjob_field "$namespace" "$STABLE_CRONJOB" ".metadata.annotations[\"$PREVIOUS_IMAGE_ANNOTATION\"]")
  if [[ "$failed_unknown" == true ]]; then
    error "stable runs $current and stays as it is: without the failed digest this job cannot tell whether that is the failed release (see above)"
  elif [[ -z "$current" ]]; then
    warn "no CronJob $STABLE_CRONJOB in $namespace: nothing to roll back on stable"
  elif [[ -z "$previous" ]]; then
    info "stable runs $current and no previous version is recorded: stable stays as it is"
  elif [[ "$previous" == "$current" ]]; then
    info "stable already runs the previous version $current: nothing to undo"
  elif [[ -n "$failed_image" && "$current" != "$failed_image" ]]; then
    info "stable runs $current, not the failed $failed_image: stable stays as it is"
  else
    info "stable: $current -> $previous"
    kube_change set image "cronjob/$STABLE_CRONJOB" --namespace "$namespace" "$JOB_CONTAINER=$previous"
    kube_change annotate cronjob "$STABLE_CRONJOB" --namespace "$namespace" --overwrite \
      "scripts-ci/rolled-back-from=$current"
  fi
  info "rollback done: the CronJob $STABLE_CRONJOB runs $(cronjob_image "$namespace" "$STABLE_CRONJOB" || true)"
}
