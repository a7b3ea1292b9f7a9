#!/usr/bin/env bash
# UI strings Spanish→English for fine-tuning the Bible model: the Spanish gettext catalogs of the
# same Debian packages as examples/gettext-en-fr (its prepare.py --lang es), into ./data/.
# Usage: bash examples/finetune-ui-es-en/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
GETTEXT="$HERE/../gettext-en-fr"
PACKAGES="$("$PY" -c "import sys; sys.path.insert(0, '$GETTEXT'); import prepare; print(*prepare.PACKAGES)")"
# shellcheck disable=SC2086  # one word per package
need_debs $PACKAGES
"$PY" "$GETTEXT/prepare.py" --lang es --out "$HERE/data" "$@"
