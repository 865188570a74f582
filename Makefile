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

.PHONY: run test compile lint check-manifests image bench bench-quick clean constraints

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $(STAMP)

## run: train on the bundled demo data through kfp.local and print where the results are (MONTH=3 drifts the data)
run: $(STAMP)
	$(CIVICML) run --config $(CONFIG) $(if $(MONTH),--month $(MONTH),)

## test: the whole test suite (unit + integration, slow ones included); "no tests ran" is a failure
test: $(STAMP)
	@set +e; $(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## compile: write pipelines/compiled/*.yaml for the KFP UI (IMAGE=... sets the components' image)
compile: $(STAMP)
	$(CIVICML) compile --config $(CONFIG) --image $(IMAGE)

## lint: ruff
lint: $(STAMP)
	$(VENV)/bin/ruff check civicml components pipelines tests benchmarks tools

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
