#!/usr/bin/env bash
# Spanish→English Bible: Reina-Valera 1909 (sword-text-sparv) → World English Bible
# (sword-text-web), aligned verse by verse with diatheke, into examples/bible-es-en/data/.
# Usage: bash examples/bible-es-en/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
need_debs diatheke sword-text-sparv sword-text-web
"$PY" "$HERE/prepare.py" --out "$HERE/data" "$@"
