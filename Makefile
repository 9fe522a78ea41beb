# Tessera: the two commands a user needs are `make run` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup system lint clean

run: setup
	@if [ -z "$$DISPLAY" ] && [ -z "$$WAYLAND_DISPLAY" ]; then \
	  echo "No display found: starting Tessera on a virtual X display (xvfb-run)."; \
	  xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) main.py --demo; \
	else $(PY) main.py --demo; fi

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

setup: system $(STAMP)

# Debian packages Qt, OpenGL and the virtual display need; installed when we are root, else listed.
system:
	@bash tools/system_packages.sh

# A fresh environment each time (--clear): a setup cut short, say mid pip upgrade, cannot leave a broken one.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
