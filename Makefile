# The two set-up commands of the README. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# A known-good pair; override with `make test TORCH="torch torchvision"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean mutants reproduce readme

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/verydeep reproduce degradation --preset quick

# Every experiment and reproductions/index.md (resumable: run it again to continue), then the README's table.
PRESET ?= standard
reproduce: $(STAMP)
	$(VENV)/bin/verydeep reproduce all --preset $(PRESET)

readme: $(STAMP)
	$(PY) tools/readme_results.py

test: $(STAMP)
	$(PY) -m pytest
	$(VENV)/bin/ruff check src tests benchmarks tools

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks

# Mutation testing of the code that decides results (not part of `make test`: it takes long). One module:
# `make mutants MODULES=src/verydeep/schedules.py`; several: MODULES="a.py b.py"; default: every module of
# [tool.verydeep.mutants] in pyproject.toml. Ends with each mutant that survived, with its diff.
MODULES ?=
JOBS    ?= 2
mutants: $(STAMP)
	$(PY) tools/mutants.py --max-children $(JOBS) $(MODULES)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache mutants
