#!/usr/bin/env bash
# Installs what tests/test_browser.py needs on a fresh Debian machine: the system Chromium with
# its driver (Debian packages), and Selenium in the project's virtual environment.
# Idempotent: when everything is present it only checks, in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY="${VENV_PY:-.venv/bin/python}"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi

if [ -x "$VENV_PY" ] && ! "$VENV_PY" -c "import selenium" >/dev/null 2>&1; then
    "$VENV_PY" -m pip install -q "selenium>=4.10"
fi

chromium --version 2>/dev/null
