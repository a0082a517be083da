# The README's two commands: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
TICK_INTERVAL ?= 10
# pytest-xdist workers for `make test` (0 runs in one process). Four on two CPUs: the
# browser tests spend most of their time waiting, so two workers left the CPUs idle.
TEST_WORKERS ?= 4
export RMA_INSTANCE_PATH ?= $(CURDIR)/instance

.PHONY: run test install install-test lint chromium test-tools bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# `rma tick --loop` runs beside gunicorn and sends queued e-mail (printed here with the
# default RMA_MAIL_BACKEND=console). When gunicorn stops the loop is stopped; Ctrl-C or a
# SIGTERM to make stops both. The first `rma tick` stops here on a bad MAIL_*/SMTP_*
# setting before anything starts.
run: install
	$(BIN)/rma init-db
	$(BIN)/rma demo-data
	$(BIN)/rma tick
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C stops); e-mail is sent every $(TICK_INTERVAL) s"
	@$(BIN)/rma tick --loop --interval $(TICK_INTERVAL) & tick=$$!; \
	$(BIN)/gunicorn --no-control-socket --workers $(WORKERS) --bind $(HOST):$(PORT) \
		--access-logfile - 'rma:create_app()' & web=$$!; \
	trap 'kill -TERM $$web $$tick 2>/dev/null' INT TERM; \
	wait $$web; status=$$?; \
	kill -TERM $$tick 2>/dev/null; wait; exit $$status

# Debian packages the tests drive: Chromium for the browser tests, zbar and poppler to
# decode the barcodes of rendered labels.
chromium:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v pdftoppm >/dev/null 2>&1 || missing="$$missing poppler-utils"; \
	ls /usr/lib/*/libzbar.so.0 /usr/lib/libzbar.so.0 >/dev/null 2>&1 || missing="$$missing libzbar0"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing >/dev/null; \
	fi

lint: install-test
	$(BIN)/ruff check .

test: install-test chromium
	$(BIN)/ruff check .
	$(BIN)/bandit -q -r rma warranty -ll
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: install-test
	$(BIN)/python bench/import_units.py
	$(BIN)/python bench/warranty_lookup.py

clean:
	rm -rf $(VENV) instance build dist .pytest_cache
