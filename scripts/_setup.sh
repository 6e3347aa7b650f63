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
