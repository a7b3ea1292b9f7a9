#!/usr/bin/env bash
# UI strings English→French: msgid → msgstr of the gettext .mo catalogs of a fixed set of Debian
# packages, into examples/gettext-en-fr/data/.
# Usage: bash examples/gettext-en-fr/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
# the package list lives in prepare.py (PACKAGES)
PACKAGES="$("$PY" -c "import sys; sys.path.insert(0, '$HERE'); import prepare; print(*prepare.PACKAGES)")"
# shellcheck disable=SC2086  # one word per package
need_debs $PACKAGES
"$PY" "$HERE/prepare.py" --out "$HERE/data" "$@"
