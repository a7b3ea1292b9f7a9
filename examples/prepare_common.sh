# shellcheck shell=bash
# Sourced by examples/*/prepare.sh: picks the Python and installs missing packages.
# PYTHON overrides the interpreter; by default the repository's .venv, else python3.
EXAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$EXAMPLES/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3
fi

# need_debs PKG...: apt-get install the Debian packages that are not installed yet.
need_debs() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# need_pip MODULE SPEC [PIP-OPTION...]: pip install SPEC unless MODULE already imports.
need_pip() {
  local module="$1" spec="$2"; shift 2
  "$PY" -c "import $module" 2>/dev/null && return 0
  echo "installing Python package: $spec"
  "$PY" -m pip install -q "$@" "$spec"
}
