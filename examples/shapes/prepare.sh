#!/usr/bin/env bash
# Generated image captioning: two coloured shapes -> "a red circle left of a blue square"
# (32 x 32 PNGs drawn with Pillow); 8k train / 300 dev / 1,000 test images.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m transduce.data.generate shapes examples/shapes/data --train 8000 --dev 300 --test 1000
