# The two commands the README promises:  make demo  and  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Photos to index: ../shared/photos beside the checkout, else the sample photos bundled in scikit-image.
PHOTOS ?= $(shell test -d ../shared/photos && echo ../shared/photos)
METRIC ?= effnet-lite0
LIBRARY ?= .lookalike

# What the suite is proven on: every package pinned in constraints.txt (refresh: make lock).
EXTRAS := test,postgres,demo
LOCK := constraints.txt
DINOV2 := dinov2==0.0.1.dev2  # DINOv2 code for the parity tests (it pins torch 2.0: installed --no-deps)
# JOBS=N runs N pytest workers (pytest-xdist, whole files per worker); 0 runs in one process, the default:
# on 2 cores two workers took 20:10 against about 15 minutes in one process (torch threads contend).
JOBS ?= 0
XDIST = $(if $(filter-out 0,$(JOBS)),-n $(JOBS) --dist loadfile,)
# $(call venv,DIR,PIP-ARGS): the project and its extras installed into the venv DIR (made if missing).
venv = (test -x $(1)/bin/python || $(PY) -m venv $(1)) && $(1)/bin/python -m pip install -q --upgrade pip && \
	$(1)/bin/python -m pip install -q $(2) -e '.[$(EXTRAS)]' && $(1)/bin/python -m pip install -q --no-deps $(DINOV2)

$(BIN)/lookalike: pyproject.toml $(LOCK)
	$(call venv,$(VENV),-c $(LOCK))
	touch $@

.PHONY: install demo test test-latest test-seeds lock bench
install: $(BIN)/lookalike

demo: install
	@photos="$(PHOTOS)"; [ -n "$$photos" ] || photos=$$($(BIN)/python -c 'import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), "data"))'); \
	queries=$$(ls "$$photos"/*.jpg "$$photos"/*.png 2>/dev/null | head -n 3 | tr '\n' ' '); \
	set -x; \
	$(BIN)/lookalike index "$$photos" --library "$(LIBRARY)" --metric $(METRIC) && \
	$(BIN)/lookalike status --library "$(LIBRARY)" && \
	$(BIN)/lookalike search $$queries --library "$(LIBRARY)" -k 5 --exclude-self

test: install
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# The suite at the newest versions pyproject's ranges allow (no lock), in a venv of its own: drift
# shows up here before users meet it.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST) && $(call venv,$(LATEST),)
	$(LATEST)/bin/python -m pip freeze --exclude-editable | diff $(LOCK) - | grep '^[<>]' || echo "same versions as $(LOCK)"
	$(LATEST)/bin/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# The learning tests under five seeds (data, splits, initialisation and batch order all follow it).
test-seeds: install
	for s in 0 1 2 3 4; do LOOKALIKE_TEST_SEED=$$s $(BIN)/python -m pytest -q $(XDIST) -m learning $(PYTEST_ARGS) || exit 1; done

# Refresh the lock: resolve pyproject's ranges afresh in a scratch venv and pin what it installed.
lock:
	rm -rf .venv-lock && $(call venv,.venv-lock,)
	{ echo "# Exact versions the test suite is proven on; made by 'make lock' ($$(date -u +%F)), used by 'make install'."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable; } > $(LOCK)
	rm -rf .venv-lock

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]' && $(BIN)/python -m pip install -q --no-deps autofaiss==2.18.0
	PYTHONPATH=. $(BIN)/python benchmarks/embed_throughput.py
	PYTHONPATH=. $(BIN)/python benchmarks/index_throughput.py
	PYTHONPATH=. $(BIN)/python benchmarks/reindex.py
	PYTHONPATH=. $(BIN)/python benchmarks/dreamsim_speed.py
	PYTHONPATH=. $(BIN)/python benchmarks/copy_detection.py
	PYTHONPATH=. $(BIN)/python benchmarks/search.py --sizes 100000
