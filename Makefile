# Two entry points for a fresh clone; each installs what it needs into .venv first.
#   make demo   evolve two losses for digits (TaylorGLO, an MLN), meta-test them against CE and label smoothing (fixed and tuned)
#   make test   lint and type-check the package, then run the test suite (what CI runs)
#   make check  lint (ruff) and type-check (mypy) only
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	rm -rf runs/demo runs/demo-taylor runs/demo-digits
	$(BIN)/deap-mln evolve-taylor --preset quick --seed 0 --quiet --out runs/demo-taylor
	$(BIN)/deap-mln evolve --preset quick --data digits --seed 0 --out runs/demo
	$(BIN)/deap-mln show runs/demo
	$(BIN)/deap-mln meta-test --loss runs/demo-taylor/best_loss.pt runs/demo/best_loss.pt ce ls ls-tuned \
		--model mlp3 --data digits --seeds 5 --quiet --out runs/demo-digits

check: $(BIN)/.installed
	$(BIN)/ruff check deap_mln tests benchmarks
	$(BIN)/mypy

test: check
	$(BIN)/python -m pytest

.PHONY: install demo check test
