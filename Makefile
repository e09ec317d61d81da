# The two commands the README promises:  make demo  and  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PHOTOS ?= $(shell test -d ../shared/photos && echo ../shared/photos || echo sample)
LIBRARY ?= .lookalike

$(BIN)/lookalike: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,postgres,demo,bench]'
	touch $@

.PHONY: install demo test bench
install: $(BIN)/lookalike

demo: install
	$(BIN)/python -m lookalike.demo --photos "$(PHOTOS)" --library "$(LIBRARY)"

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/embed_throughput.py
