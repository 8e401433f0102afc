# llmperf-nb: the two commands a new user needs are `make report` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# llama.cpp is built from source by pip; a portable CPU build unless the caller says otherwise
# (e.g. CMAKE_ARGS="-DGGML_CUDA=ON" on a GPU machine). Whatever the caller says, only what the Python
# bindings load is built (libllama, libggml*): no multimodal library, and llama.cpp's "common" library
# from an empty source (scripts/llama-cpp-bindings.cmake says why); that halves the compile.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF
override CMAKE_ARGS += -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama_cpp_INCLUDE=$(CURDIR)/scripts/llama-cpp-bindings.cmake
export CMAKE_ARGS

.PHONY: report test test-fast setup setup-test lint clean help

help:
	@echo "make report   set up .venv, run params/quickstart.yaml, print where the report is"
	@echo "make test     set up .venv with test tools, run the whole test suite"
	@echo "make test-fast  the tests with no slow, docker or gpu marker (about 2 min on 2 cores; for contributors)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install only when the project's requirements change. Compiling llama.cpp is most of the set-up
# (about 4 of 5 min on 2 cores with nothing cached), so its wheel is built beside the download and
# install of everything else (not byte-compiled at install: Python writes the .pyc of what it imports),
# then installed from $(VENV)/wheels; the pin is pyproject's.
LLAMA_CPP_SPEC := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
$(VENV)/.setup: pyproject.toml | $(BIN)/python
	$(BIN)/pip wheel -q --no-deps -w $(VENV)/wheels '$(LLAMA_CPP_SPEC)' & wheel=$$!; \
	$(BIN)/pip install -q --no-compile -e .; rc=$$?; \
	wait $$wheel && [ $$rc -eq 0 ] && $(BIN)/pip install -q --find-links $(VENV)/wheels -e '.[llama_cpp]'
	touch $@

# The tests run HF transformers on the CPU too. TORCH_SPEC names the torch to install first: on this
# project's CI machines torch 2.13.0 is a CPU build already on disk; elsewhere pass a CPU build you
# prefer, e.g. make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0

$(VENV)/.setup-test: pyproject.toml $(VENV)/.setup
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[llama_cpp,docker,test,transformers,mlc,ray]'
	touch $@

# The serve workload's load generator, AIPerf (pyproject.toml's `serve` extra), in its own venv: it pins
# huggingface_hub<2 and pandas~=2.3, which the engines' environment need not share (docs/serving.md).
# Installed once per AIPERF_SPEC (its stamp names the spec): .ci/run keeps the venv outside the clone.
AIPERF_SPEC ?= aiperf==0.13.0
AIPERF_VENV ?= .venv-aiperf
export AIPERF ?= $(abspath $(AIPERF_VENV))/bin/aiperf
AIPERF_STAMP := $(AIPERF_VENV)/.installed-$(subst ==,-,$(AIPERF_SPEC))

$(AIPERF_STAMP):
	test -x $(AIPERF_VENV)/bin/python || $(PYTHON) -m venv $(AIPERF_VENV)
	$(AIPERF_VENV)/bin/pip install -q --upgrade pip
	$(AIPERF_VENV)/bin/pip install -q $(AIPERF_SPEC)
	touch $@

# llama-server for the serve workload's test (tests/test_workloads.py): built once into the test cache from the
# bindings' own llama.cpp source, outside the tests' time (11 min on the idle 2-core CI machine, docs/serving.md),
# then found there by its key (the bindings' version, their sdist's sha256, the CMake flags). .ci/run keeps the
# test cache outside the clone, so that a CI job from a fresh clone builds it only when that key changes.
TEST_CACHE ?= .cache/tests
export LLMPERF_NB_TEST_CACHE ?= $(abspath $(TEST_CACHE))

$(TEST_CACHE)/.llama-server: $(VENV)/.setup
	$(BIN)/python -m llmperf_nb.engines.llama_server $(TEST_CACHE)
	touch $@

setup: $(VENV)/.setup
setup-test: $(VENV)/.setup-test $(AIPERF_STAMP) $(TEST_CACHE)/.llama-server

report: setup
	$(BIN)/llmperf-nb run params/quickstart.yaml

test: setup-test
	$(BIN)/ruff check llmperf_nb tests
	$(BIN)/pytest --durations=15

# What a contributor runs after each change: no real engine end to end, no Docker, no GPU; so neither
# llama-server nor AIPerf, which only the slow serving tests use (their first build takes 15+ min).
test-fast: $(VENV)/.setup-test
	$(BIN)/ruff check llmperf_nb tests
	$(BIN)/pytest -q -m "not slow and not docker and not gpu"

lint: $(VENV)/.setup-test
	$(BIN)/ruff check llmperf_nb tests
	$(BIN)/ruff format --check llmperf_nb tests

clean:
	rm -rf reports/quickstart .pytest_cache
