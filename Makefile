# finpulse: two commands on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
TORCH_VERSION ?= 2.13.0

.PHONY: install browser monitoring demo test test-fast lint lint-baseline dashboard soak chaos train-models train-entity-target train-accurate cards clean

install: $(STAMP)

# torch goes first and pinned: on these CPU machines `torch==2.13.0` resolves to the local CPU
# build, and once it is installed the `torch>=2.4` requirement is satisfied, so nothing can
# pull several GB of CUDA wheels. (On a GPU host the same pin installs the CUDA build.)
$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e ".[dev,accurate]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

demo: install
	$(VENV)/bin/finpulse demo

# The browser test drives Debian's chromium through chromium-driver; install them when missing
# (needs root and apt, as on CI; elsewhere install them yourself or the browser test fails saying so).
browser:
	@command -v chromedriver >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "could not install chromium + chromium-driver (needs root and apt); the browser test will fail"

# The monitoring tests run Debian's Prometheus and promtool (a real server scraping a stream's /metrics,
# `promtool check rules` / `test rules` on infra/prometheus); install the package when missing, as `browser` does.
monitoring:
	@command -v promtool >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null) \
		|| echo "could not install prometheus (needs root and apt); the monitoring tests will fail"

# Two pytest workers (pytest-xdist): most slow tests wait on brokers, sleeps and child processes,
# so two share these 2 cores well. Each worker has its own broker. Measured times: docs/BENCHMARKS.md, "Test suite".
TEST_WORKERS ?= 2
test: install browser monitoring
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

# Everything but the slow end-to-end tests (real broker runs, kills, S3, Beam job service), on the same two workers.
test-fast: install browser monitoring
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow" tests

# ruff + mypy against lint-baseline.json: a finding added to any file fails; the counts may only shrink.
lint: install
	$(PY) scripts/lint.py

lint-baseline: install
	$(PY) scripts/lint.py --update

# Long reliability runs (docs/RELIABILITY.md): each prints one JSON summary (lost, duplicated, RSS, drain).
SOAK_MINUTES ?= 60
SOAK_RATE ?= 30
soak: install
	$(VENV)/bin/finpulse chaos soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --every 60 --workdir soak-$$(date +%Y%m%d-%H%M%S)

chaos: install
	$(VENV)/bin/finpulse chaos kill --kills 20
	$(VENV)/bin/finpulse chaos outage --seconds 60
	$(VENV)/bin/finpulse chaos load --minutes 10

LAKE ?= demo-lake
dashboard: install
	$(VENV)/bin/finpulse dashboard --lake $(LAKE)

# Reproduces models/default: 3 epochs took 38 min on 2 CPU cores. It was trained in fp32,
# so fp32 is pinned here (the default would use bf16 on CPUs with native bf16).
DATA ?= ../shared/data
train-models: install
	$(VENV)/bin/finpulse train all \
		--data sentiment=$(DATA)/tfns_sentiment_train.csv --data topic=$(DATA)/tfn_topic_train.csv \
		--data ner=$(DATA)/conll2003_train.txt --data ner=$(DATA)/finer_ord_train.txt \
		--dev ner=$(DATA)/conll2003_dev.txt --dev ner=$(DATA)/finer_ord_dev.txt \
		--epochs 3 --lora-rank 32 --lora-alpha 64 --lr 1e-3 --precision fp32 \
		--version finpulse-mt-2026.11-r2 --out models/default
	# r2 adds two head-only steps on the frozen encoder (neither can change topic or NER): the news-aware
	# sentiment head refit (warm start from the head above) and the per-company sentiment span head.
	$(VENV)/bin/finpulse refit-head --model models/default --data $(DATA) --save
	$(VENV)/bin/finpulse train-entity-head --model models/default --data $(DATA)/sentfin_entity_train.jsonl \
		--data $(DATA)/finentity_train.jsonl --repeat finentity_train=3 --mixed-repeat 5 --epochs 8 --save
	$(MAKE) train-entity-target

# The target-marked per-company model (models/engine/targets.py): its own small LoRA on MiniLM, run only for texts
# naming several companies. FinEntity is listed three times to oversample it (its selection rows count once).
# t3 is distilled from the accurate profile's per-company model (models/entity-target-accurate) over 8,000
# target-marked inputs cut from real unlabelled texts (`finpulse distill targets`; docs/MODELS.md).
TARGET_TRANSFER ?= $(VENV)/target-transfer.csv
train-entity-target: install
	$(VENV)/bin/finpulse distill targets --data $(DATA) --out $(TARGET_TRANSFER)
	$(VENV)/bin/finpulse train entity_target --data $(DATA)/sentfin_entity_train.jsonl \
		--data $(DATA)/finentity_train.jsonl --data $(DATA)/finentity_train.jsonl --data $(DATA)/finentity_train.jsonl \
		--teacher entity_target=models/entity-target-accurate --unlabeled entity_target=$(TARGET_TRANSFER) --kd-alpha 0.5 \
		--epochs 5 --layers 3 --lora-rank 16 --lora-alpha 32 --lr 1e-3 \
		--version finpulse-entity-target-2026.12-t3 --out models/entity-target

# The "accurate" sentiment model (models/registry-accurate.json): LoRA on all-mpnet-base-v2. Meant for a
# GPU (about 2.5 minutes on an H100, three trainings sharing it; not tried on a CPU, where mpnet costs ~8x MiniLM per token).
train-accurate: install
	$(VENV)/bin/finpulse train sentiment --data $(DATA)/tfns_sentiment_train.csv --base package:all-mpnet-base-v2 \
		--lora-rank 16 --lora-alpha 32 --epochs 5 --lr 5e-4 --head-lr 1e-3 \
		--version finpulse-sentiment-mpnet-2026.11-a1 --out models/sentiment-mpnet
	$(VENV)/bin/finpulse shrink models/sentiment-mpnet --rank 15  # keeps the adapter file under 5 MiB

cards: install
	$(VENV)/bin/finpulse cards models/default --data $(DATA)
	$(VENV)/bin/finpulse cards models/sentiment-mpnet --data $(DATA)

clean:
	rm -rf $(VENV) lake demo-lake .pytest_cache
