# Set-up on a fresh machine: `make demo` (install + main job), `make test` (install + test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gensynth-installed
DEMO := runs/demo
DRAW := $(if $(shell command -v dot),svg,dot)

.PHONY: install demo test test-all bench clean

$(PY):
	python3 -m venv $(VENV)

# torch first, pinned to the local CPU wheel, so nothing else can pull a CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,onnx,ray]"
	@command -v dot >/dev/null || echo "note: graphviz's 'dot' is missing (apt-get install graphviz): diagrams fall back to .dot text"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/gensynth spaces sample dcac --seed 0 --out $(DEMO)/arch.yaml
	$(VENV)/bin/gensynth inspect $(DEMO)/arch.yaml --runs 5 --draw $(DEMO)/arch.$(DRAW)
	$(VENV)/bin/gensynth search --config experiments/demo.yaml
	$(VENV)/bin/gensynth show $(DEMO)

# the suite in single-thread pytest-xdist workers, one more than the cores: tests that wait on
# subprocesses leave their core to the others (5 to 6 minutes on 2 cores); test-all adds the
# slow-marked tests
JOBS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
test: install
	$(PY) -m pytest -q -m "not slow" -n $(JOBS)

test-all: install
	$(PY) -m pytest -q -n $(JOBS)

bench: install
	$(PY) experiments/bench_core.py
	$(PY) experiments/bench_search.py --budget 500
	$(PY) experiments/bench_rewrites.py

clean:
	rm -rf $(VENV) runs build *.egg-info
