# Two entry points: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install install-test clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build on this machine's disk; the package itself keeps an open range.
install: $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

install-test: $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"

demo: install
	$(VENV)/bin/transduce demo

test: install-test
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) build *.egg-info runs
