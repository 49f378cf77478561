# The two commands of the README, and the checks.
#   make demo    set everything up, then run the main job
#   make test    set everything up, then run the test suite (what CI runs)
#   make check   lint, types and tests
VENV := .venv/bin
OUT ?= out/demo

.PHONY: setup demo test check lint format types

setup:
	scripts/setup.sh

demo: setup
	$(VENV)/singsong demo --out $(OUT)

test: setup
	$(VENV)/python -m pytest -n 2

lint:
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks

format:
	$(VENV)/ruff format src tests benchmarks
	$(VENV)/ruff check --fix src tests benchmarks

types:
	$(VENV)/mypy src/singsong benchmarks

check: setup lint types
	$(VENV)/python -m pytest -n 2
