# Shared set-up for scripts/serve, scripts/test and the benchmarks (sourced, not run).
# Idempotent: creates .venv if missing, (re)installs the project when setup.cfg changed,
# installs Debian packages the project needs when they are missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
EXTRAS="${SETUP_EXTRAS:-test,postgres}"

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
apt_want() {  # apt_want COMMAND-OR-FILE PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -e "$1" ]; then need_apt+=("$2"); fi
}

install_apt() {
  [ ${#need_apt[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need_apt[*]} (run as root or install them)"; return 0
  fi
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-$EXTRAS"
  if [ ! -e "$stamp" ]; then
    log "installing the project into $VENV (extras: $EXTRAS)"
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  fi
  log "PostgreSQL is not answering on 127.0.0.1:5432; its tests will be skipped"
}

# Apache ECharts for the dashboard (ticket_api/static/dashboard/vendor/echarts.min.js, git-ignored), from the
# npm registry at a pinned version whose tarball must match the pinned integrity; served by the API itself.
ECHARTS_VERSION="6.1.0"
ECHARTS_INTEGRITY="sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA=="
setup_echarts() {
  local dir="$ROOT/ticket_api/static/dashboard/vendor" tmp tgz got
  if [ -s "$dir/echarts.min.js" ] && [ -e "$dir/.echarts-$ECHARTS_VERSION" ]; then return 0; fi
  if ! command -v npm >/dev/null 2>&1; then
    log "npm is missing: the dashboard runs without its charts (install npm, then run this again)"; return 0
  fi
  log "fetching echarts@$ECHARTS_VERSION for the dashboard"
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && npm pack --silent "echarts@$ECHARTS_VERSION" >/dev/null 2>"$tmp/npm.err"); then
    log "npm pack echarts@$ECHARTS_VERSION failed: $(tail -3 "$tmp/npm.err")"; rm -rf "$tmp"; return 1
  fi
  tgz="$tmp/echarts-$ECHARTS_VERSION.tgz"
  got="$("$PY" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")"
  if [ "$got" != "$ECHARTS_INTEGRITY" ]; then
    log "echarts@$ECHARTS_VERSION: integrity $got is not the pinned $ECHARTS_INTEGRITY; not installed"
    rm -rf "$tmp"; return 1
  fi
  tar -xzf "$tgz" -C "$tmp" package/dist/echarts.min.js package/LICENSE
  mkdir -p "$dir"
  rm -f "$dir"/.echarts-*
  mv "$tmp/package/dist/echarts.min.js" "$dir/echarts.min.js"
  mv "$tmp/package/LICENSE" "$dir/LICENSE.echarts"
  touch "$dir/.echarts-$ECHARTS_VERSION"
  rm -rf "$tmp"
}
