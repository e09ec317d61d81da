# The two commands the README promises:  make demo  and  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Photos to index: ../shared/photos beside the checkout, else the sample photos bundled in scikit-image.
PHOTOS ?= $(shell test -d ../shared/photos && echo ../shared/photos)
METRIC ?= effnet-lite0
LIBRARY ?= .lookalike

$(BIN)/lookalike: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,postgres,demo]'
	$(BIN)/python -m pip install -q --no-deps dinov2==0.0.1.dev2  # DINOv2 code for parity tests (pins torch 2.0)
	touch $@

.PHONY: install demo test bench
install: $(BIN)/lookalike

demo: install
	@photos="$(PHOTOS)"; [ -n "$$photos" ] || photos=$$($(BIN)/python -c 'import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), "data"))'); \
	queries=$$(ls "$$photos"/*.jpg "$$photos"/*.png 2>/dev/null | head -n 3 | tr '\n' ' '); \
	set -x; \
	$(BIN)/lookalike index "$$photos" --library "$(LIBRARY)" --metric $(METRIC) && \
	$(BIN)/lookalike status --library "$(LIBRARY)" && \
	$(BIN)/lookalike search $$queries --library "$(LIBRARY)" -k 5 --exclude-self

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]' && $(BIN)/python -m pip install -q --no-deps autofaiss==2.18.0
	PYTHONPATH=. $(BIN)/python benchmarks/embed_throughput.py
	PYTHONPATH=. $(BIN)/python benchmarks/index_throughput.py
	PYTHONPATH=. $(BIN)/python benchmarks/reindex.py
	PYTHONPATH=. $(BIN)/python benchmarks/dreamsim_speed.py
	PYTHONPATH=. $(BIN)/python benchmarks/copy_detection.py
	PYTHONPATH=. $(BIN)/python benchmarks/search.py --sizes 100000
