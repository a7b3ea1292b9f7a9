#!/usr/bin/env bash
# Generated reversal task: 50 symbols, lengths 1-20; 20k train / 500 dev / 1,000 test pairs.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m transduce.data.generate reverse examples/reverse/data --train 20000 --dev 500 \
    --test 1000 --vocab 50 --max-len 20
