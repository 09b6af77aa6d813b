#!/usr/bin/env bash
# Install everything the template's test suite needs on a fresh Debian 12 machine with
# Python 3.11: uv and the Python dev environment (uv.lock), the npm tools
# (package-lock.json) and, when run as root, the system packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

APT_PACKAGES=(
  git make curl jq rsync           # basics, rsync for gitlab-ci-local
  postgresql postgresql-client     # integration tests, backup/restore scripts
  prometheus                       # golden-signal and canary checks, promtool
  prometheus-pushgateway           # the batch pushes its metrics; freshness check end to end
  prometheus-alertmanager          # amtool check-config; alerts reach GitLab's endpoint end to end
  buildah podman runc debootstrap  # image builds and hardened runs without Docker
  wrk                              # load for the performance script
  chromium fonts-dejavu-core       # the docs site opened in a real browser (playwright-core drives it)
)

missing_apt=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing_apt+=("$package")
done
if ((${#missing_apt[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    log "apt: installing ${missing_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
  else
    echo "Missing system packages: ${missing_apt[*]}" >&2
    echo "Install them (sudo apt-get install ${missing_apt[*]}) or run this script as root." >&2
    exit 1
  fi
fi

# kubectl is not in Debian's archive: the machines this suite targets ship it (client only).
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: install the Kubernetes client (any 1.30+), e.g. from your distribution's" >&2
  echo "Kubernetes repository; the manifest and deploy-script tests need 'kubectl kustomize'." >&2
  exit 1
fi

if ! command -v uv >/dev/null; then
  log "pip: installing uv"
  python3 -m pip install --quiet uv
fi
log "uv: syncing the dev environment from uv.lock"
uv sync --locked --quiet

# npm ci reinstalls from scratch (minutes: ~630 packages, two native modules compiled): only
# when package-lock.json changed since the last install. A clean clone takes node_modules
# from the cache of an earlier install of the same lock file (hard links: seconds).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
npm_cache="${XDG_CACHE_HOME:-$HOME/.cache}/playbook-test/node_modules-$lock_sum"
if [[ "$(cat node_modules/.installed-lock.sha256 2>/dev/null)" != "$lock_sum" ]]; then
  rm -rf node_modules
  if [[ -d "$npm_cache" ]]; then
    log "npm: test tools from the cache of package-lock.json ($npm_cache)"
    cp -al "$npm_cache" node_modules
  else
    log "npm: installing test tools from package-lock.json"
    npm ci --silent --no-audit --no-fund
    # Only this lock file's install is kept; nothing writes into node_modules afterwards.
    rm -rf "${npm_cache%-*}"-*
    mkdir -p "$(dirname "$npm_cache")"
    cp -al node_modules "$npm_cache.partial" && mv "$npm_cache.partial" "$npm_cache"
  fi
  echo "$lock_sum" > node_modules/.installed-lock.sha256
fi
# checkov pins many libraries of its own: it lives in a virtualenv of its own.
CHECKOV_VERSION=3.3.30
if [[ ! -x .tools/checkov/bin/checkov ]] || ! .tools/checkov/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  log "checkov $CHECKOV_VERSION into .tools/checkov"
  uv venv --quiet --python python3 .tools/checkov
  VIRTUAL_ENV=.tools/checkov uv pip install --quiet "checkov==$CHECKOV_VERSION"
fi
log "test dependencies ready"
