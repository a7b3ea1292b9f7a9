#!/usr/bin/env bash
# Man-page summarization: DESCRIPTION section → NAME-line summary, from a fixed set of Debian
# documentation packages rendered with mandoc, into examples/manpages-summ/data/.
# Usage: bash examples/manpages-summ/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
# the package list lives in prepare.py (PACKAGES); mandoc renders the pages
PACKAGES="$("$PY" -c "import sys; sys.path.insert(0, '$HERE'); import prepare; print(*prepare.PACKAGES)")"
# shellcheck disable=SC2086  # one word per package
need_debs mandoc $PACKAGES
"$PY" "$HERE/prepare.py" --out "$HERE/data" "$@"
need_pip rouge_score rouge-score
"$PY" "$HERE/lead_baseline.py" --data "$HERE/data"
