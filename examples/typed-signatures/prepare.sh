#!/usr/bin/env bash
# Rewriting: standard-library function signature → the same with typeshed's annotations, from
# the Python 3.11 library and the stubs of python3-mypy, into examples/typed-signatures/data/.
# Usage: bash examples/typed-signatures/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
# the package list lives in prepare.py (PACKAGES)
PACKAGES="$("$PY" -c "import sys; sys.path.insert(0, '$HERE'); import prepare; print(*prepare.PACKAGES)")"
# shellcheck disable=SC2086  # one word per package
need_debs $PACKAGES
"$PY" "$HERE/prepare.py" --out "$HERE/data" "$@"
