#!/usr/bin/env bash
# Emoji images → their CLDR names: four rendering styles of the ~3,650 emoji of emoji-test.txt,
# into examples/emoji-captions/data/ (images/<style>/*.png and the split files, see README.md).
# Usage: bash examples/emoji-captions/prepare.sh [--force]    (--force rebuilds existing data)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/prepare_common.sh
source "$HERE/../prepare_common.sh"
need_debs unicode-data fonts-noto-color-emoji libcairo2
command -v npm >/dev/null || need_debs npm
need_pip PIL pillow
need_pip cairosvg cairosvg
# the npm packages, pinned in prepare.py (NPM), fetched once into data/npm/
NPM_DIR="$HERE/data/npm"
mkdir -p "$NPM_DIR"
for spec in $("$PY" -c "import sys; sys.path.insert(0, '$HERE'); import prepare; print(*prepare.NPM.values())"); do
  tgz="$("$PY" -c "import sys; sys.path.insert(0, '$HERE'); import prepare; print(prepare.npm_tarball('$spec'))")"
  [ -f "$NPM_DIR/$tgz" ] || (cd "$NPM_DIR" && npm pack --silent "$spec" >/dev/null)
done
"$PY" "$HERE/prepare.py" --out "$HERE/data" --npm "$NPM_DIR" "$@"
