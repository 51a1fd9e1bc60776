# fusionlab: two commands, `make train` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: install train test test-fast bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first (the CPU build served for this exact version), so that the project install
# does not pull several GB of CUDA wheels; then the project in editable mode with dev extras.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# torch-fidelity's Inception, the reference the FID port is tested against (tests/test_fid.py).
# Installed without dependencies *outside* site-packages: found by torchmetrics, its package
# __init__ (which imports torchvision) would break torchmetrics.image on this machine.
FIDELITY := .cache/torch-fidelity/torch_fidelity
$(FIDELITY): $(STAMP)
	$(BIN)/pip install -q --no-deps --target .cache/torch-fidelity "torch-fidelity==0.4.0" \
	  || echo "torch-fidelity could not be installed: the FID port check will skip"

install: $(STAMP) $(FIDELITY)

train: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python train.py $(ARGS)

# One pytest worker per core (pytest-xdist), each test file on one worker (its module fixtures are
# built once) and one torch thread per worker (two workers of two threads each on two cores would
# only contend); subprocess tests inherit OMP_NUM_THREADS.
WORKERS ?= $(shell $(PY) -c "import os; print(min(4, len(os.sched_getaffinity(0))))")
XDIST   := -n $(WORKERS) --dist loadfile

test: install
	$(BIN)/lint-imports
	WANDB_MODE=offline OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-fast: install
	WANDB_MODE=offline OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf logs outputs multirun wandb .pytest_cache
