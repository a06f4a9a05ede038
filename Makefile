# The two commands: `make demo` and `make test`. Both create the virtual
# environment on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint kafka browser clean

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

# Install Debian's chromium and chromedriver for the dashboard test, when
# missing and run as root; otherwise say what is missing. Safe to repeat.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "chromium or chromedriver not found: run 'make browser' as root, or"; \
		echo "install chromium and chromium-driver; the dashboard test skips until then"; \
	fi

test: $(STAMP) kafka
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var build *.egg-info
