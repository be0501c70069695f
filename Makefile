# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= postgres,mysql,mlflow,dev
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
export FLASK_APP := modelport

.PHONY: run test test-fast mlflow-venv lint format bench bench-db bench-serving bench-csv bench-analytics bench-ydata-venv bench-memory bench-group-commit bench-peers install migrate demo wheel requirements translations clean k8s-sync k8s-migration-job k8s-render screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/python -m pip install --quiet -c requirements.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

migrate: install
	$(BIN)/flask db upgrade

demo: migrate
	$(BIN)/modelport demo --if-empty

run: demo
	$(BIN)/modelport serve --bind 127.0.0.1:5000 --workers 2

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The quick subset: SQLite only, no browser, no servers or processes started, a tenth of the
# property-based examples. Needs no service; under two minutes on two cores.
FAST_MARKERS := not services and not e2e and not slow
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "$(FAST_MARKERS)" --fast $(PYTEST_ARGS)

# The MLflow tracking server the tests start (tests/support/mlflow_server.py): the full
# mlflow package pins gunicorn below 27, so it lives in a virtualenv of its own under
# ~/.cache/modelport/mlflow-venv/<version>, made once with the package index (about a minute).
mlflow-venv: install
	$(BIN)/python -m tests.support.mlflow_server

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bench-db bench-serving bench-csv bench-analytics bench-memory

bench-db: install
	$(BIN)/python bench/db_stages.py $(BENCH_ARGS)

# BASELINE=<commit>: also serve the hot-path rows with that commit's code, side by side.
bench-serving: install
	$(BIN)/python bench/serving.py $(if $(BASELINE),--baseline $(BASELINE)) $(SERVING_BENCH_ARGS)

# Durable records on PostgreSQL: the worker's group commit against its alternatives
# (docs/adr/0001-group-commit.md). Not part of `make bench`: about 10 minutes.
bench-group-commit: install
	$(BIN)/python bench/group_commit.py $(GROUP_COMMIT_BENCH_ARGS)

# Modelport against `mlflow models serve`, the same MLflow model, side by side
# (docs/benchmarks.md). Needs the MLflow virtualenv (mlflow-venv). About 2 minutes.
bench-peers: mlflow-venv
	$(BIN)/python bench/peers.py $(PEERS_BENCH_ARGS)

# dist/modelport-*.whl; it carries the migrations, so `modelport db upgrade` works wherever
# it is installed (tests/test_packaging.py). build/ goes first: setuptools would ship files
# deleted from the source since the last build.
wheel: $(BIN)/python
	rm -rf build
	$(BIN)/python -m pip wheel . --no-deps -w dist

bench-csv: install
	$(BIN)/python bench/csv_width.py $(CSV_BENCH_ARGS)

# Modelport's dataset profile against ydata-profiling's minimal mode (docs/benchmarks.md).
# ydata-profiling needs pandas<3, numpy<2.4 and scipy<1.17, so it lives in a virtualenv of its
# own, made once by bench-ydata-venv (with the package index); without it the benchmark says
# so and times Modelport alone.
YDATA_VENV ?= $(HOME)/.cache/modelport/ydata-venv
bench-analytics: install
	$(BIN)/python bench/analytics.py --ydata-venv $(YDATA_VENV) $(ANALYTICS_BENCH_ARGS)

bench-ydata-venv:
	$(PYTHON) -m venv $(YDATA_VENV)
	$(YDATA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(YDATA_VENV)/bin/python -m pip install --quiet "ydata-profiling>=4.9" "pandas<3" "numpy<2.4" "scipy<1.17" pyarrow "setuptools<81"

# Memory (PSS) of gunicorn's master and 2 workers with the demo models loaded, preload off
# and on (docs/benchmarks.md, "Memory"). About a minute.
bench-memory: install
	$(BIN)/python bench/memory.py $(MEMORY_BENCH_ARGS)

# Regenerate the pinned requirements.txt from pyproject.toml (needs the package index).
requirements: $(BIN)/python
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --extra postgres --extra mysql --extra mlflow --extra dev \
		--output-file requirements.txt pyproject.toml

# Re-extract translatable text and compile the catalogues after editing templates or code.
translations: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o modelport/translations/messages.pot .
	$(BIN)/pybabel update -i modelport/translations/messages.pot -d modelport/translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d modelport/translations

# The pictures of docs/guide.md (docs/images/guide/*.png): a throwaway demo instance served
# by gunicorn, photographed by the system's Chromium (/usr/bin/chromium) through Playwright;
# the Korean pages need a Hangul font (fonts-noto-cjk). About a minute.
screenshots: install
	$(BIN)/python scripts/screenshots.py $(SCREENSHOTS_ARGS)

# Kubernetes (deploy/k8s, docs/deploy.md): kustomize reads no file outside deploy/k8s, so the
# nginx config is copied in; the migration Job's name carries a hash of the migrations and of
# the rendered Job (image tag, settings). tests/deploy/test_kubernetes.py fails when either is
# stale.
k8s-sync:
	cp deploy/nginx/nginx.conf deploy/nginx/modelport.conf deploy/k8s/base/nginx/

k8s-migration-job: install
	$(BIN)/python deploy/k8s/migration_job.py

OVERLAY ?= prod
k8s-render: k8s-sync k8s-migration-job
	kubectl kustomize deploy/k8s/overlays/$(OVERLAY)

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache build dist
