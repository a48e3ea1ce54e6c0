# Two commands: `make demo` (set up + run the whole chain on the bundled demo) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tinyemo-installed

export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1

.PHONY: demo test install lint bench clean-stores

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# constraints.txt pins the torch/torchvision pair that imports cleanly on CPU and keeps pip from replacing torch.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tinyemo run full-pipeline --profile demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-stores:
	rm -rf storage/demo_data storage/manifests storage/features storage/labels storage/runs storage/splits \
	  storage/models storage/generations storage/instructions storage/finetune storage/reasoning \
	  storage/experiments storage/answers storage/evaluations storage/activations storage/emotic \
	  storage/emotic_boxes storage/imports storage/backbones.yaml
