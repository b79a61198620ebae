# Set-up and the two commands that matter: `make demo` and `make test`.
# Each creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch and torchvision are pinned here (pyproject declares ranges); these install from disk.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-fast lint system-deps bench reid-study gpu-session clean

install: $(STAMP)

# A download cut short by the network is retried: pip itself retries and resumes (up to 20
# times), and each install is tried again three times, 20 s apart, before the set-up fails.
PIP_INSTALL = $(BIN)/python -m pip install -q --retries 10 --timeout 60
define retried
for attempt in 1 2 3; do \
	$(1) && exit 0; \
	echo "install failed (attempt $$attempt of 3): $(1)" >&2; \
	[ $$attempt = 3 ] || sleep 20; \
done; exit 1
endef

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call retried,$(PIP_INSTALL) --upgrade pip)
	$(call retried,$(PIP_INSTALL) --resume-retries 20 $(TORCH))
	$(call retried,$(PIP_INSTALL) --resume-retries 20 -e '.[all]' $(TORCH))
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

# Every test, as CI runs them: about 12 minutes on 2 CPU cores (14 with the installation).
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

# Without the tests marked slow (export, torch.compile, torchrun and other subprocesses, the
# browser, the bundled models' cards, anything over ~3 s): about 2 minutes on 2 CPU cores.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

bench: $(STAMP)
	$(BIN)/posetransfer bench --out bench_out

# The CPU re-ID study of docs/reid.md (about 15 minutes on 2 cores): the synthetic people in
# Market-1501's re-ID layout, a small generator trained on them (or continued), and Table 6's
# sweep at p = 0.1, 0.3 and 1 with a ResNet-18 trained from scratch. Rerunning skips what is done.
REID := reid_out
reid-study: $(STAMP)
	$(BIN)/posetransfer synthetic --out $(REID)/data --test-ids 50 --reid
	@run=$$(ls -d $(REID)/runs/*-generator 2>/dev/null | head -n 1); \
	if [ -z "$$run" ]; then \
		$(BIN)/posetransfer train --config synthetic --data.root $(REID)/data \
			--train.runs_dir $(REID)/runs --train.run_name generator; \
	else \
		$(BIN)/posetransfer train --train.resume "$$run"; \
	fi
	$(BIN)/posetransfer reid study --market $(REID)/data \
		--annotations $(REID)/data/synthetic-annotation-train.csv --out $(REID)/study \
		--portions 0.1 0.3 1.0 --generators $$(ls -d $(REID)/runs/*-generator | head -n 1) \
		--backbone resnet18 --pretrained none --steps 300 --height 128 --width 64

# One unattended session on a rented CUDA machine, under 9 minutes: environment, the gpu tests,
# bench --compare, a DDP run and both bundled recipes retrained, packed into at most 5 files
# in OUT. Needs no venv (the GPU machine has python3 with torch); GPU_SESSION_SMOKE=1 runs it
# at tiny sizes on a CPU. See the head of scripts/gpu-session.sh.
OUT ?= gpu_session_out
gpu-session:
	bash scripts/gpu-session.sh $(OUT)

clean:
	rm -rf $(VENV) demo_out bench_out runs $(REID)
