#!/usr/bin/env bash
# Code summarization: Python function code → first sentence of its docstring, from the Python
# files of a fixed set of Debian packages, into examples/code-docstring/data/.
# Usage: bash examples/code-docstring/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
# the package list lives in prepare.py (PACKAGES)
PACKAGES="$("$PY" -c "import sys; sys.path.insert(0, '$HERE'); import prepare; print(*prepare.PACKAGES)")"
# shellcheck disable=SC2086  # one word per package
need_debs $PACKAGES
"$PY" "$HERE/prepare.py" --out "$HERE/data" "$@"
