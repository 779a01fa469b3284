# Two commands do everything on a fresh clone (see README):
#   make demo   - build .venv if needed, then run the main job (python -m pipeline; ARGS="--keep-serving" etc.)
#   make test   - build .venv if needed, then run the test suite
# Both (re)build the virtual environment only when pyproject.toml or the requirements change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

# Keep every cache, model build and Ray temp file inside the repository.
export EXPERT_CACHE_DIR ?= $(CURDIR)/.cache
export HF_HOME ?= $(CURDIR)/.cache/huggingface
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test clean

$(STAMP): pyproject.toml requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so no other package can pull a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	HF_HUB_OFFLINE=1 $(PY) -m pipeline $(ARGS)

test: venv
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .cache .pytest_cache
