# recstream: the two fresh-machine commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo dashboard test test-gpu faults lint bench bench-quick eval eval-warm clean

install: $(STAMP)

# torch first, from plain pip: 2.13.0 is a local CPU build on these machines, and
# pyproject's range accepts it, so the project install pulls no CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[embedded,dev,eval]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/recstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest

BENCH_STAMP := $(VENV)/.bench-installed
DATA ?= ../shared/data/ml-100k/u.data

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[embedded,dev,bench]'
	touch $(BENCH_STAMP)

# Writes docs/benchmarks-cpu.md and docs/img/bench-cpu.png (about 4.5 minutes on 2 cores).
bench: $(BENCH_STAMP)
	$(BIN)/recstream bench --data $(DATA) --out docs/benchmarks-cpu.md

bench-quick: $(BENCH_STAMP)
	$(BIN)/recstream bench --quick --data $(DATA) --out docs/benchmarks-cpu.md

EVAL_STAMP := $(VENV)/.eval-installed
EVAL_DATA ?= ../shared/data/ml-100k/u.data ../shared/data/ml-latest-small/ratings.csv
# Each generated stream (genres, clusters): 200k events, so ALS every 10k fits on them too.
EVAL_SYNTHETIC ?= 200000
EVAL_ALS_EVERY ?= 10000

$(EVAL_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[embedded,dev,eval]'
	touch $(EVAL_STAMP)

# (after EVAL_STAMP's definition: a prerequisite is expanded where its rule is read)
# Writes docs/img/dashboard.png: the Grafana dashboard's panels drawn from /metrics scrapes of a
# demo (60k clicks at 1,000/s, about 80 s); needs matplotlib (the `eval` extra).
dashboard: $(EVAL_STAMP)
	$(BIN)/recstream dashboard --out docs/img/dashboard.png

# Writes docs/accuracy.md and docs/img/accuracy-*.png: prequential HR/NDCG/MRR@10 of the
# Engine and its peers (item-kNN and ALS every 10k events among them) on each file plus two
# drifting synthetic streams (genres, clusters), and the through-Kafka check on the first 10k
# events of the first file (about 7 minutes on 2 cores, each synthetic stream about 2).
# Replays of bursty logs: the popularity prior counts events, not seconds (a MovieLens user
# rates hundreds of films in minutes), and the seen history is as long as it may be, since the
# peers exclude everything a user clicked.
# Each source and feature group left out in turn, on this many first events of each stream.
EVAL_ABLATIONS ?= 30000
EVAL_ENV ?= RECSTREAM_POPULARITY_CLOCK=events RECSTREAM_POPULARITY_TAU=3000 RECSTREAM_SEEN_HISTORY=1900

eval: $(EVAL_STAMP)
	$(EVAL_ENV) $(BIN)/recstream eval $(EVAL_DATA) --synthetic-events $(EVAL_SYNTHETIC) \
		--als-every $(EVAL_ALS_EVERY) \
		--kafka-check 10000 --ablations $(EVAL_ABLATIONS) --out docs/accuracy.md

# Cold against warm starts (offline ALS vectors, the prefix replayed online) on ml-100k.
eval-warm: $(EVAL_STAMP)
	$(EVAL_ENV) $(BIN)/recstream eval-warm $(DATA)

test-gpu: $(STAMP)
	$(BIN)/pytest -m gpu

# The long fault tests (a 10-minute soak by default; RECSTREAM_SOAK_S=60 for a quick look).
faults: $(STAMP)
	$(BIN)/pytest -m soak -s tests/integration

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
