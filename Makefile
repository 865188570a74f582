# civicml — every target creates .venv and installs on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CIVICML := $(VENV)/bin/civicml
STAMP := $(VENV)/.installed
IMAGE ?= ghcr.io/civicml/civicml:0.1.0
VERSION ?= 0.1.0
MONTH ?=
CONFIG ?= civicml.yaml
PYTEST_ARGS ?=
# What `make testcluster` builds (build.sh targets: all, minio, kube, kwok).
TESTCLUSTER_TARGETS ?= all

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-fast testcluster fuzz compile lint check-manifests image bench bench-quick clean constraints chromium

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $(STAMP)

## run: train on the bundled demo data through kfp.local and print where the results are (MONTH=3 drifts the data)
run: $(STAMP)
	$(CIVICML) run --config $(CONFIG) $(if $(MONTH),--month $(MONTH),)

## chromium: Debian's chromium for the review console's browser tests (apt-get; Playwright downloads nothing)
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests (apt-get install chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || { \
	  echo "error: $(CHROMIUM) is missing and apt-get could not install chromium (run as root, or set CHROMIUM=...)" >&2; \
	  exit 1; }
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is still missing after apt-get install chromium" >&2; exit 1; }

## test: lint and type checks, then the whole test suite (unit + integration + cluster, slow ones included);
## "no tests ran" is a failure
test: $(STAMP) lint testcluster chromium
	@set +e; $(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## test-fast: unit tests only (no MinIO, no control plane, no kfp.local pipelines)
test-fast: $(STAMP)
	@set +e; $(PY) -m pytest -q tests/unit $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## testcluster: build the real test servers (MinIO, etcd, Kubernetes, KWOK) from Go modules if missing
## (cached in ~/.cache/civicml/testcluster). CIVICML_SKIP_CLUSTER=1 opts out, loudly, never in CI.
testcluster:
	@if [ -n "$$CIVICML_SKIP_CLUSTER" ] && [ "$$CIVICML_SKIP_CLUSTER" != 0 ]; then \
	  if [ -n "$$CI" ]; then echo "error: CIVICML_SKIP_CLUSTER is set but so is CI: CI must run the real-server tests" >&2; exit 1; fi; \
	  echo "!!! CIVICML_SKIP_CLUSTER=$$CIVICML_SKIP_CLUSTER: NOT building the real servers; MinIO and Kubernetes tests will be SKIPPED !!!" >&2; \
	else tools/testcluster/build.sh $(TESTCLUSTER_TARGETS); fi

## compile: write pipelines/compiled/*.yaml for the KFP UI (IMAGE=... sets the components' image)
compile: $(STAMP)
	$(CIVICML) compile --config $(CONFIG) --image $(IMAGE)

## fuzz: schemathesis (--checks all) against the live server's /openapi.json; FUZZ_EXAMPLES=200 for a longer run
FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	CIVICML_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/integration/test_server_hardening.py -k schemathesis -s

## lint: ruff check, ruff format --check and mypy (level held in pyproject [tool.mypy]); part of `make test`
LINT_PATHS := civicml components pipelines tests benchmarks tools
lint: $(STAMP)
	@$(VENV)/bin/ruff check $(LINT_PATHS) || { echo "error: ruff check failed (above); fix it, or 'ruff check --fix' for the fixable ones" >&2; exit 1; }
	@$(VENV)/bin/ruff format --check $(LINT_PATHS) || { echo "error: ruff format --check failed: run '$(VENV)/bin/ruff format $(LINT_PATHS)'" >&2; exit 1; }
	@$(VENV)/bin/mypy || { echo "error: mypy failed on civicml/ (above) at the level held in pyproject [tool.mypy]" >&2; exit 1; }

## check-manifests: render every kustomize overlay and validate it (needs kubectl)
check-manifests: $(STAMP)
	$(PY) tools/check_manifests.py

## image: build the civicml image (needs a container engine)
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$$(git rev-parse HEAD) \
	  --build-arg IMAGE=$(IMAGE) -t $(IMAGE) .

## bench: benchmarks (not part of test); writes benchmarks/results.md and .json
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

## constraints: re-pin constraints.txt from the current venv (after changing dependencies)
constraints:
	$(PY) -m pip freeze --exclude-editable | grep -v '^civicml' > constraints.txt

clean:
	rm -rf $(VENV) .civicml .pytest_cache
