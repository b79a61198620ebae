# Set-up and the two commands that matter: `make demo` and `make test`.
# Each creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch and torchvision are pinned here (pyproject declares ranges); these install from disk.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint system-deps bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[all]' $(TORCH)
	touch $@

# Real photos for the keypoint tests (Debian's opencv-doc) and Chromium for the browser test.
system-deps:
	@if [ ! -e /usr/share/doc/opencv-doc/examples/data ] || ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc chromium >/dev/null; \
		else \
			echo "note: install opencv-doc and chromium (apt) to run the photo and browser tests"; \
		fi; \
	fi

demo: $(STAMP)
	$(BIN)/posetransfer demo --out demo_out

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

bench: $(STAMP)
	$(BIN)/posetransfer bench --out bench_out

clean:
	rm -rf $(VENV) demo_out bench_out runs
