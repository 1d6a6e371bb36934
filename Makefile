# Rustwatch: the two commands a new user needs (see README.md).
#
#   make run    create .venv, install, migrate, create a first admin, then run
#               web + Celery worker + beat in the foreground (Ctrl-C stops all)
#   make test   install, then run the whole test suite (pytest)
#
# Everything else (finding a Python >= 3.12, the install stamp) is plumbing for
# those two. PYTHON=/path/to/python3.12 picks the interpreter by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := run

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rustwatch-installed
PYTEST_ARGS ?=

.PHONY: run test

run: $(STAMP)
	$(PY) manage.py run

# pytest exits 5 when no test ran: that is a failure here too.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The venv is made once, with the first interpreter that really runs and is
# >= 3.12 (a pyenv shim for a version that is not active fails, so every
# candidate is executed, not just looked up).
$(PY):
	@set -e; \
	found=""; \
	for c in $(PYTHON) python3.12 python3.13 \
	         $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3 \
	         $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3 \
	         /usr/local/bin/python3.12 /usr/local/bin/python3.13 \
	         /usr/bin/python3.12 /usr/bin/python3.13 python3 python; do \
	  if "$$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] < (3, 12))' \
	       >/dev/null 2>&1; then found="$$c"; break; fi; \
	done; \
	if [ -z "$$found" ]; then \
	  echo "error: no Python >= 3.12 with venv and ensurepip found;" \
	       "install one (e.g. apt-get install python3.12-venv) or pass PYTHON=/path/to/python" >&2; \
	  exit 1; \
	fi; \
	echo "Creating $(VENV) with $$found ($$("$$found" -V 2>&1))"; \
	"$$found" -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)
