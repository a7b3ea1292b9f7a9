#!/usr/bin/env bash
# Dialogue: message → reply pairs from PyPI chatterbot-corpus (English YAML conversations),
# into examples/dialogue/data/.
# Usage: bash examples/dialogue/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
# --no-deps: chatterbot-corpus pins PyYAML<4, but any PyYAML reads its files
need_pip chatterbot_corpus chatterbot-corpus==1.3.3 --no-deps
"$PY" "$HERE/prepare.py" --out "$HERE/data" "$@"
