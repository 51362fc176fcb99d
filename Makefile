# Two set-up commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test quick lint venv clean serve

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	MATSEARCH_WORKSPACE=$${MATSEARCH_WORKSPACE:-workspace} $(BIN)/matsearch demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra

# The edit loop: ruff + the tests not marked slow (about 2 minutes on 2 cores); `make test` still runs everything.
quick: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

serve: $(STAMP)
	$(BIN)/python server.py

clean:
	rm -rf workspace .pytest_cache
