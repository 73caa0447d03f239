# clone-operator — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CLONE_OPERATOR_CACHE from the environment wins: a second local cluster (another cache and
# port) must never reach the default one's state through make.
CACHE ?= $(or $(CLONE_OPERATOR_CACHE),$(HOME)/.cache/clone-operator)
export CLONE_OPERATOR_CACHE := $(CACHE)
KUBECONFIG_LOCAL := $(CACHE)/kwok/clusters/clone-operator/kubeconfig.yaml
TOOLS := $(CACHE)/path
PYTEST_ARGS ?=
IMAGE ?= ghcr.io/clone-operator/clone-operator
MOVER_IMAGE ?= ghcr.io/clone-operator/clone-operator-mover
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
HELM ?= $(TOOLS)/helm
CHART := helm/clone-operator
CHART_RENDERED := .artifacts/chart-rendered

##@ Development

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python virtualenv with the operator and dev tools.

.PHONY: dev
dev: cluster crds-apply ## Run the operator against the local cluster (starts it if needed).
	KUBECONFIG=$(KUBECONFIG_LOCAL) CLONE_OPERATOR_WEBHOOK_MODE=$${CLONE_OPERATOR_WEBHOOK_MODE:-local} \
		CLONE_OPERATOR_WEBHOOK_CLIENT_CA=$${CLONE_OPERATOR_WEBHOOK_CLIENT_CA-$(CACHE)/kwok/webhook-client/ca.crt} \
		$(VENV)/bin/clone-operator run --dev

##@ Checks

.PHONY: lint
lint: venv ## ruff and the import-layer contracts.
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/lint-imports

.PHONY: typecheck
typecheck: venv ## mypy --strict.
	$(VENV)/bin/mypy

.PHONY: test
test: venv crds-check chart-lint docs lint typecheck ## Everything CI runs: checks, docs, unit tests, e2e tests on the local cluster.
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Unit tests only (no cluster).
	$(PY) -m pytest -m 'not e2e' $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: venv ## e2e tests against the local cluster (started on demand).
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

.PHONY: torture
torture: venv ## The full torture suite: 2 replicas, 20 leader SIGKILLs, paused leaders, control-plane restarts.
	CLONE_OPERATOR_TORTURE=full $(PY) -m pytest tests/e2e/test_torture.py -s $(PYTEST_ARGS)

.PHONY: bench
bench: venv cluster ## Benchmark CloningOperation against direct StatefulSets; prints figures.
	$(PY) -m tests.bench.operations

.PHONY: bench-copy
bench-copy: venv cluster ## Time to a Ready clone per copy method against the same snapshots and restores made by hand.
	$(PY) -m tests.bench.copies

.PHONY: bench-scale
bench-scale: venv cluster ## 100 then 1,000 CloningOperations at once: peak RSS, requests per operation, pickup.
	$(PY) -m tests.bench.scale

.PHONY: bench-mover
bench-mover: venv ## The data mover (Docker): throughput against cp -a, and a killed transfer resumes.
	$(PY) -m tests.bench.mover

.PHONY: bench-guard
bench-guard: venv ## The identity rewrite and its guard on 1 MB of hostile text: medians and ratios.
	$(PY) -m tests.bench.guard

.PHONY: bench-api
bench-api: venv cluster ## Benchmark the gateway: p50/p95 of create, get and list over 1,000 of each.
	$(PY) -m tests.bench.api

##@ Docs

.PHONY: docs
docs: venv ## Build the docs site into .artifacts/site (mkdocs --strict: a broken link fails); reference fresh.
	$(PY) hack/config-reference.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

.PHONY: docs-reference
docs-reference: venv ## Regenerate docs/reference/configuration.md from the settings models and values.yaml.
	$(PY) hack/config-reference.py

.PHONY: docs-serve
docs-serve: venv ## Preview the docs site on http://127.0.0.1:8000.
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

##@ Deploy (the local cluster's real node)

.PHONY: deploy
deploy: venv cluster crds-apply ## Build the image, import it into the real node, helm upgrade --install the chart, wait Ready.
	$(PY) hack/deploy.py up $(DEPLOY_ARGS)

.PHONY: undeploy
undeploy: venv ## Uninstall what `make deploy` installed (DEPLOY_RELEASE, DEPLOY_NAMESPACE).
	$(PY) hack/deploy.py down

##@ CRDs

.PHONY: crds
crds: venv ## Regenerate crds/ from the pydantic models.
	$(PY) -m clone_operator.api.crds --write crds
	hack/sync-chart-crds.sh

.PHONY: crds-check
crds-check: venv ## Fail when crds/ is stale against the models.
	$(PY) -m clone_operator.api.crds --check crds

.PHONY: crds-apply
crds-apply: venv
	$(TOOLS)/kubectl --kubeconfig $(KUBECONFIG_LOCAL) apply --server-side --force-conflicts -f crds/

##@ Packaging

.PHONY: image
image: ## Build the image (IMAGE, IMAGE_TAG; BASE_IMAGE= a registry base, default a debootstrap Debian one).
	hack/image.sh $(IMAGE):$(IMAGE_TAG)

.PHONY: mover-image
mover-image: venv ## Build the data mover's image (MOVER_IMAGE:IMAGE_TAG; rsync + stunnel from Debian's packages); put it on the local cluster's real nodes.
	IMAGE_KIND=mover hack/image.sh $(MOVER_IMAGE):$(IMAGE_TAG)
	$(PY) hack/deploy.py import $(MOVER_IMAGE):$(IMAGE_TAG)

.PHONY: chart-lint
chart-lint: venv tools ## helm lint, chart CRDs in sync with crds/, checkov on the rendered chart.
	$(HELM) lint --strict $(CHART)
	hack/sync-chart-crds.sh --check
	$(PY) hack/chart-values.py --check
	rm -rf $(CHART_RENDERED) && mkdir -p $(CHART_RENDERED)/default $(CHART_RENDERED)/namespaced $(CHART_RENDERED)/api
	$(HELM) template clone-operator $(CHART) --namespace clone-operator --output-dir $(CHART_RENDERED)/default >/dev/null
	$(HELM) template clone-operator $(CHART) --namespace clone-operator --set 'watchNamespaces={team-a,team-b}' --output-dir $(CHART_RENDERED)/namespaced >/dev/null
	$(HELM) template clone-operator $(CHART) --namespace clone-operator --set api.enabled=true --output-dir $(CHART_RENDERED)/api >/dev/null
	$(VENV)/bin/checkov --config-file .checkov.yaml -d $(CHART_RENDERED) --framework kubernetes --quiet --compact

.PHONY: chart-docs
chart-docs: venv ## Regenerate the values tables (the chart's README, the docs' configuration reference).
	$(PY) hack/chart-values.py
	$(PY) hack/config-reference.py

.PHONY: chart-crds
chart-crds: ## Copy crds/ into the chart (after `make crds`).
	hack/sync-chart-crds.sh

.PHONY: e2e-kind
e2e-kind: venv ## On a kind cluster (needs Docker, kind, kubectl, helm): build, load, helm install, run the e2e suite.
	hack/e2e-kind.sh

##@ Local control plane (tests/cluster)

.PHONY: tools
tools: venv ## Build missing control-plane binaries and helm (cached in ~/.cache/clone-operator).
	$(PY) tests/cluster/localcluster.py build

.PHONY: cluster
cluster: venv ## Build missing binaries and start (or reuse) the local cluster (CLONE_OPERATOR_REAL_NODES=east: the first real node only).
	$(PY) tests/cluster/localcluster.py up

.PHONY: cluster-down
cluster-down: venv ## Stop the local cluster and delete its state.
	$(PY) tests/cluster/localcluster.py down

.PHONY: cluster-plan
cluster-plan: venv ## Print kwokctl's dry-run plan and prove it downloads nothing.
	$(PY) tests/cluster/localcluster.py plan

.PHONY: clean
clean: ## Remove the virtualenv and caches in the repository (not the binary cache).
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
