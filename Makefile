# The two commands: `make demo` and `make test`. Both create the virtual
# environment on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint kafka clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tocsin demo

# Fetch the Apache Kafka jars once (needs Maven), so the tests run on Kafka.
kafka: $(STAMP)
	@if command -v mvn >/dev/null && command -v java >/dev/null; then \
		$(BIN)/python -m tocsin.broker fetch; \
	else \
		echo "mvn or java not found: the tests will fall back to Tansu"; \
	fi

test: $(STAMP) kafka
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var build *.egg-info
