# Two commands do everything: `make lab` (the tutorial) and `make test` (the whole suite).
# The test run shortens the moderation poll interval of notebook 02 (learners get the seed's 5 s).
PYTHON ?= python3
SHELL := /bin/bash
RESTATE_VERSION := 1.7.12
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
VENV_STAMP := $(VENV)/.installed
TS_CLIENT_VERSION := 1.17.2
# Test workers (pytest-xdist), each with its own lab on free ports; most tests wait on timers,
# on Restate and on the browser, so six share two cores well (fresh clones here with notebooks
# 00–09, 527 tests: 6 min 48 s with six workers; 7 min 24 s with five, on a heavier commit).
TEST_WORKERS ?= 6
TOOLS_STAMP := $(TOOLS)/.installed-$(RESTATE_VERSION)-ctl-clients-$(TS_CLIENT_VERSION)
# An editable install makes setuptools print an "Editable installation … be careful with
# folders … with the same name as your package" banner, a note that is not a problem: hidden.
PIP_INSTALL := PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet

.PHONY: setup browser lab test up demo bench chaos lint clean

setup: $(VENV_STAMP) $(TOOLS_STAMP)

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "Python 3.10 or newer is needed (found $$($(PYTHON) --version))."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[course,test]'
	@# jsonschema's optional IRI checker (rfc3987-syntax, pulled in by JupyterLab) builds a parser
	@# on import: 2.8 s of CPU in every process that imports nbformat (each pytest with nbmake,
	@# each JupyterLab). No notebook or test validates an IRI: without it, jsonschema skips that.
	$(BIN)/python -m pip uninstall --quiet --yes rfc3987-syntax
	@# JupyterLab without its "news" and update pop-ups (they cover every page), and without
	@# a "Select Kernel" dialog on opening each notebook (the notebooks' kernel starts).
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}, "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": true}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

$(TOOLS_STAMP):
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 20+ (it brings npm), then run make again."; exit 1; }
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error \
		@restatedev/restate-server@$(RESTATE_VERSION) @restatedev/restate@$(RESTATE_VERSION) \
		@restatedev/restatectl@$(RESTATE_VERSION) \
		@restatedev/restate-sdk-clients@$(TS_CLIENT_VERSION)
	touch $@

# JupyterLab on loopback only; it refuses to run as root unless told (containers, CI machines).
# Its config dir is jupyter/: custom/custom.css keeps output lines from breaking inside words.
lab: setup
	JUPYTER_CONFIG_DIR="$(CURDIR)/jupyter" $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 \
		--ServerApp.root_dir=notebooks \
		--custom-css \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# Chromium for the browser test: Debian's package (Playwright's own browser download is not
# reachable here), installed when run as root on Debian/Ubuntu (CI), else named in one sentence.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || echo "The browser test needs Chromium: install your" \
		"system's chromium package (Debian/Ubuntu: sudo apt-get install chromium)."

test:
	@# The venv (pip), the npm tools and the browser check are independent: side by side.
	$(MAKE) --no-print-directory -j3 setup browser
	$(BIN)/ruff check restate_tutorial tests benchmarks
	@# Every notebook runs once, under nbmake's runner with every code cell twice, and is then
	@# checked in a browser (tests/system/test_make_lab.py): `pytest --nbmake notebooks` would
	@# run each a second time. Every benchmark runs in its quick mode (tests/test_benchmarks.py).
	@# bash's `time` closes the run with its wall and CPU time (pytest and all it started).
	@TIMEFORMAT='make test: %0R s wall, CPU %0U s user + %0S s sys'; \
		time RESTATE_TUTORIAL_POLL_SECONDS=0.5 RESTATE_TUTORIAL_MODEL_SECONDS=0.02 \
		$(BIN)/pytest tests -p no:cacheprovider -n $(TEST_WORKERS) --durations=25

up: setup
	$(BIN)/python -m restate_tutorial up $(ARGS)

demo: setup
	$(BIN)/python -m restate_tutorial demo $(ARGS)

# A chaos soak: random faults while sagas and posts run, then every promise checked.
# `make chaos ARGS="--seconds 600 --seed 42 --nodes 3"`; the seed to replay is printed first.
chaos: setup
	$(BIN)/python -m restate_tutorial soak $(ARGS)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml
	$(PIP_INSTALL) -e '.[course,test,bench]'
	touch $@

# Every benchmark to the end (one that fails is named, the rest still run), then a table of
# their headline figures; exit status 1 if any failed. ARGS="--quick" for a smoke run.
bench: setup $(BENCH_STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

lint: setup
	$(BIN)/ruff check restate_tutorial tests benchmarks

clean:
	rm -rf $(VENV) $(TOOLS) *.egg-info
