# Every target bootstraps .venv itself from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench protos clean

$(STAMP): pyproject.toml hatch_build.py $(wildcard bot/serving/protos/*.proto)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,postgres,socket-mode,demo-models]'
	# tensorflow-serving-api is installed only so a test can compare our protos with the real ones;
	# --no-deps because it pins the full `tensorflow` distribution, and tensorflow-cpu provides it here.
	$(BIN)/python -m pip install -q --no-deps 'tensorflow-serving-api==2.21.*'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/modelbot demo

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

protos: $(STAMP)
	$(BIN)/python -m pip install -q --no-build-isolation -e . 2>/dev/null || $(BIN)/python -m pip install -q -e .

clean:
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache
