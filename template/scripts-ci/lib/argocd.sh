# shellcheck shell=bash disable=SC2034 # ARGOCD_REASON is read by lib/gitops.sh and its scripts
# Argo CD's REST API for lib/gitops.sh (sourced, never run on its own): wait until
# an Application is Synced and Healthy at a Git revision of the GitOps repository. curl and
# jq only, no argocd CLI. The Applications are deploy/argocd/applications.yaml.
#
#   ARGOCD_SERVER         Argo CD's address: https://argocd.example.com, or host[:port] as the
#                         argocd CLI takes it (https is assumed)
#   ARGOCD_AUTH_TOKEN     a token of the AppProject's role `ci` (deploy/argocd/appproject.yaml:
#                         `argocd proj role create-token <project> ci`), allowed to get the
#                         project's Applications
#   ARGOCD_WAIT_TIMEOUT   how long to wait for Synced and Healthy (default 10m; s, m or h)
#   ARGOCD_POLL_INTERVAL  seconds between two looks (default 10)
#   ARGOCD_INSECURE       true: accept a self-signed certificate (curl --insecure)
#
# argocd_wait APP REVISION prints one line per change of state and returns
#   0  APP is Synced and Healthy at REVISION (or at a later commit that contains it: the
#      caller's function `revision_contains REVISION SEEN` decides, when it defines one)
#   1  the sync failed, APP is Degraded at REVISION, or the timeout passed: ARGOCD_REASON says
#      which, with the last state seen
#   2  Argo CD refused the request (token, permissions, no such Application): ARGOCD_REASON
#   5  Argo CD never answered (ARGOCD_SERVER wrong, or down): ARGOCD_REASON
ARGOCD_REASON=""

argocd_url() {
  local server=${ARGOCD_SERVER%/}
  [[ $server == http://* || $server == https://* ]] || server="https://$server"
  printf '%s' "$server"
}

argocd_seconds() { # 90s|5m|1h|30 -> seconds
  [[ $1 =~ ^([0-9]+)([smh]?)$ ]] || return 1
  case "${BASH_REMATCH[2]}" in
    m) echo $((BASH_REMATCH[1] * 60)) ;;
    h) echo $((BASH_REMATCH[1] * 3600)) ;;
    *) echo $((BASH_REMATCH[1])) ;;
  esac
}

# argocd_get APP REFRESH BODY_FILE: the HTTP status of GET /api/v1/applications/APP (000: no
# answer). REFRESH=true asks Argo CD to compare with Git now instead of at its next poll.
argocd_get() {
  local app=$1 refresh=$2 body=$3 headers insecure=()
  headers="$(mktemp)"
  chmod 600 "$headers"
  printf 'Authorization: Bearer %s\n' "$ARGOCD_AUTH_TOKEN" >"$headers"
  [[ ${ARGOCD_INSECURE:-false} != true ]] || insecure=(--insecure)
  curl -sS "${insecure[@]}" --max-time 20 -H "@$headers" -o "$body" -w '%{http_code}' \
    "$(argocd_url)/api/v1/applications/$app${refresh:+?refresh=normal}" 2>/dev/null || true
  rm -f "$headers"
}

argocd_wait() {
  local app=$1 revision=$2 timeout interval body code deadline answered=false polls=0
  local sync seen health phase op_revision op_message health_message state="" last=""
  [[ -n ${ARGOCD_SERVER:-} ]] || { ARGOCD_REASON="ARGOCD_SERVER is not set: Argo CD's address, e.g. https://argocd.example.com (a group CI/CD variable)"; return 2; }
  [[ -n ${ARGOCD_AUTH_TOKEN:-} ]] || { ARGOCD_REASON="ARGOCD_AUTH_TOKEN is not set: a token of the project role ci (argocd proj role create-token <project> ci), kept in Vault"; return 2; }
  timeout="$(argocd_seconds "${ARGOCD_WAIT_TIMEOUT:-10m}")" || { ARGOCD_REASON="ARGOCD_WAIT_TIMEOUT '${ARGOCD_WAIT_TIMEOUT}' is not a duration: use e.g. 600, 90s, 10m"; return 2; }
  interval="$(argocd_seconds "${ARGOCD_POLL_INTERVAL:-10}")" || { ARGOCD_REASON="ARGOCD_POLL_INTERVAL '${ARGOCD_POLL_INTERVAL}' is not a number of seconds"; return 2; }
  body="$(mktemp)"
  deadline=$((SECONDS + timeout))
  echo "argocd: waiting up to ${timeout}s for $app to be Synced and Healthy at ${revision:0:12} ($(argocd_url))"
  while :; do
    # Ask for a refresh on the first look and every sixth: Argo CD sees the commit at once.
    local refresh=""
    ((polls % 6 != 0)) || refresh=true
    polls=$((polls + 1))
    code="$(argocd_get "$app" "$refresh" "$body")"
    case "$code" in
      200)
        answered=true
        if ! IFS=$'\x1f' read -r sync seen health phase op_revision op_message health_message < <(jq -r '[
            .status.sync.status // "Unknown", .status.sync.revision // "",
            .status.health.status // "Unknown", .status.operationState.phase // "",
            .status.operationState.syncResult.revision // .status.operationState.operation.sync.revision // "",
            (.status.operationState.message // "" | gsub("[\n\u001f]"; " ")),
            (.status.health.message // "" | gsub("[\n\u001f]"; " "))] | join("\u001f")' "$body" 2>/dev/null); then
          ARGOCD_REASON="Argo CD answered for $app with something that is not an Application (not JSON)"
          rm -f "$body"
          return 2
        fi
        local here=false
        if [[ $seen == "$revision" ]] || { [[ -n $seen ]] && declare -F revision_contains >/dev/null && revision_contains "$revision" "$seen"; }; then
          here=true
        fi
        state="sync $sync at ${seen:0:12}, health $health${health_message:+ ($health_message)}${phase:+, last operation $phase}"
        [[ $state == "$last" ]] || echo "argocd: $app: $state"
        last=$state
        if $here && [[ $sync == Synced && $health == Healthy ]]; then
          rm -f "$body"
          return 0
        fi
        if [[ ($phase == Failed || $phase == Error) && ($op_revision == "$revision" || $here == true) ]]; then
          ARGOCD_REASON="the sync of ${revision:0:12} failed: ${op_message:-no message} ($state)"
          rm -f "$body"
          return 1
        fi
        if $here && [[ $sync == Synced && $health == Degraded ]]; then
          ARGOCD_REASON="$app is Degraded at ${revision:0:12}: ${health_message:-see argocd app get $app} ($state)"
          rm -f "$body"
          return 1
        fi
        ;;
      401 | 403)
        ARGOCD_REASON="Argo CD refused the token (HTTP $code) for application $app: ARGOCD_AUTH_TOKEN must be a token of the project role ci with get on $app"
        rm -f "$body"
        return 2 ;;
      404)
        ARGOCD_REASON="Argo CD has no application $app (HTTP 404): apply deploy/argocd/ to Argo CD's namespace (kubectl apply -k deploy/argocd), or set ARGOCD_APP"
        rm -f "$body"
        return 2 ;;
      *)
        local what="no answer" ; [[ $code == 000 ]] || what="HTTP $code"
        [[ $last == "$what" ]] || echo "argocd: $app: $what from $(argocd_url); trying again"
        last=$what ;;
    esac
    if ((SECONDS >= deadline)); then
      rm -f "$body"
      if ! $answered; then
        ARGOCD_REASON="Argo CD never answered at $(argocd_url) in ${timeout}s (last: $last): check ARGOCD_SERVER and that the runner reaches it"
        return 5
      fi
      ARGOCD_REASON="$app was not Synced and Healthy at ${revision:0:12} after ${timeout}s (last: ${state:-$last})"
      return 1
    fi
    sleep "$interval"
  done
}
