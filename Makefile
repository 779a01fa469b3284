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
# Ray's auth token for local clusters lives here, not in ~/.ray (created on first use).
export RAY_AUTH_TOKEN_PATH ?= $(CURDIR)/.cache/ray/auth_token

.PHONY: venv ray-token browser demo test clean
DS_OPS := $(TORCH_EXTENSIONS_DIR)/.prebuilt

$(STAMP): pyproject.toml requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so no other package can pull a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

venv: $(STAMP) $(DS_OPS)

# DeepSpeed's CPU ops (shared-memory collectives, CPU Adam) compiled once here (~100 s on 2 cores)
# rather than by the first training run or test that needs them (train/deepspeed_ops.py).
$(DS_OPS): $(STAMP)
	$(PY) -m train.deepspeed_ops
	touch $(DS_OPS)

ray-token:
	@test -s "$(RAY_AUTH_TOKEN_PATH)" || (mkdir -p "$(dir $(RAY_AUTH_TOKEN_PATH))" && $(PY) -c "import secrets; print(secrets.token_hex(32), end='')" > "$(RAY_AUTH_TOKEN_PATH)")

# The playground tests drive Debian's headless chromium through its chromedriver (nothing is
# downloaded at run time); installed from Debian's archive when missing (needs root or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

demo: venv ray-token
	HF_HUB_OFFLINE=1 $(PY) -m pipeline $(ARGS)

test: venv ray-token browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .cache .pytest_cache
