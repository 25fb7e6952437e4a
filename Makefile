# finpulse: two commands on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
TORCH_VERSION ?= 2.13.0

.PHONY: install demo test test-fast lint clean

install: $(STAMP)

# torch goes first and pinned: on these CPU machines `torch==2.13.0` resolves to the local CPU
# build, and once it is installed the `torch>=2.4` requirement is satisfied, so nothing can
# pull several GB of CUDA wheels. (On a GPU host the same pin installs the CUDA build.)
$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

demo: install
	$(VENV)/bin/finpulse demo

test: install
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) lake demo-lake .pytest_cache
