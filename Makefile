# Lucida — the two quick-start commands are `make run` and `make check`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Whether tests need a virtual display is decided when `test` runs, not when this file is
# parsed: on a fresh machine xvfb-run only exists once `setup` has installed it.
XVFB_RUN := xvfb-run -a -s "-screen 0 1920x1080x24"

.PHONY: run check setup lint typecheck imports test bench bench-models train-nodules fuzz clean
.PHONY: package package-test package-test-if-changed
.PHONY: bench-startup

# Set up (system packages, virtual environment) and launch the app on the demo study.
run: setup
	$(BIN)/lucida

# Set up and run every check and test: ruff, mypy --strict, import contracts, pytest.
check: setup lint typecheck imports test package-test-if-changed

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup:
	./packaging/system-deps.sh
	$(MAKE) --no-print-directory $(VENV)/.installed

lint:
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports

# In CI (CI=true) ../shared and the display are required: tests needing them fail, not skip.
test:
	@if [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null 2>&1; then \
		echo "no DISPLAY: running pytest under xvfb-run"; \
		ORT_DISABLE_TELEMETRY=1 $(XVFB_RUN) $(BIN)/python -m pytest; \
	else \
		ORT_DISABLE_TELEMETRY=1 $(BIN)/python -m pytest; \
	fi

# Benchmarks (not part of check): torch and MONAI are installed for the reference only.
bench: setup
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/load_series.py
	if [ -z "$$DISPLAY" ]; then $(XVFB_RUN) $(BIN)/python bench/render.py; \
	else $(BIN)/python bench/render.py; fi
	$(BIN)/python bench/inference.py --threads 2 --repeat 3
	$(BIN)/python bench/export.py --repeat 3
	if [ -z "$$DISPLAY" ]; then $(XVFB_RUN) $(BIN)/python bench/review_keys.py; \
	else $(BIN)/python bench/review_keys.py; fi
	if [ -z "$$DISPLAY" ]; then $(XVFB_RUN) $(BIN)/python bench/compare.py --repeat 5; \
	else $(BIN)/python bench/compare.py --repeat 5; fi

# Start-up to the first rendered frame of the demo study: the venv's `lucida` and, when built
# (`make package`), dist/lucida/lucida; one cold start (page cache dropped) and warm ones.
# Not part of check; runs itself under xvfb-run without a DISPLAY.
bench-startup: setup
	$(BIN)/python bench/startup.py --runs 5

# Published models vs their authors' own CPU pipelines (side virtual environments under
# .bench-venvs/, pinned versions; torch only as the local CPU wheel 2.13.0). Needs ../shared.
bench-models: setup
	./bench/setup_authors.sh
	$(BIN)/python bench/models.py --threads 2 --repeat 3 --deepbet-pack resources/models/deepbet-fp16w

# Lucida's lung nodule detector, trained here from ../shared (not part of check; about
# 50 min on 2 cores: 3 min of patches, 24 min of training, two rounds of hard negative
# mining with 10 and 6 min of fine-tuning, evaluation with its size study). torch lives
# only in the side environment .venv-torch (the CPU wheel, torch==2.13.0). Work files go to
# .nodules-work/ (gitignored); the pack to resources/models/lucida-lung-nodules.
NODULES_WORK ?= .nodules-work
TORCH_VENV   ?= .venv-torch
train-nodules: setup
	test -x $(TORCH_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install -q torch==2.13.0 onnx numpy
	$(BIN)/python packaging/nodules/make_dataset.py --out $(NODULES_WORK)/data
	$(TORCH_VENV)/bin/python packaging/nodules/train.py --data $(NODULES_WORK)/data \
		--out $(NODULES_WORK)/stage1 --steps 2400
	$(BIN)/python packaging/nodules/build_pack.py --train $(NODULES_WORK)/stage1 \
		--data $(NODULES_WORK)/data --out $(NODULES_WORK)/pack1 --candidates
	$(BIN)/python packaging/nodules/mine.py --pack $(NODULES_WORK)/pack1 \
		--out $(NODULES_WORK)/mined.json
	$(BIN)/python packaging/nodules/make_dataset.py --out $(NODULES_WORK)/data \
		--mined $(NODULES_WORK)/mined.json
	$(TORCH_VENV)/bin/python packaging/nodules/train.py --data $(NODULES_WORK)/data \
		--out $(NODULES_WORK)/stage2 --steps 1000 --init $(NODULES_WORK)/stage1/model.pt
	$(BIN)/python packaging/nodules/build_pack.py --train $(NODULES_WORK)/stage2 \
		--data $(NODULES_WORK)/data --out $(NODULES_WORK)/pack2 --candidates
	$(BIN)/python packaging/nodules/mine.py --pack $(NODULES_WORK)/pack2 \
		--out $(NODULES_WORK)/mined2.json
	$(BIN)/python packaging/nodules/make_dataset.py --out $(NODULES_WORK)/data \
		--mined $(NODULES_WORK)/mined.json $(NODULES_WORK)/mined2.json
	$(TORCH_VENV)/bin/python packaging/nodules/train.py --data $(NODULES_WORK)/data \
		--out $(NODULES_WORK)/train --steps 600 --init $(NODULES_WORK)/stage2/model.pt
	$(BIN)/python packaging/nodules/build_pack.py --train $(NODULES_WORK)/train \
		--data $(NODULES_WORK)/data --out $(NODULES_WORK)/pack
	$(BIN)/python packaging/nodules/evaluate.py --pack $(NODULES_WORK)/pack \
		--out $(NODULES_WORK)/eval.json
	$(BIN)/python bench/nodule_froc.py ../shared/data/ct/LIDC-IDRI-0001 \
		--pack $(NODULES_WORK)/pack --json $(NODULES_WORK)/froc.json
	$(BIN)/python packaging/nodules/build_pack.py --train $(NODULES_WORK)/train \
		--data $(NODULES_WORK)/data --eval $(NODULES_WORK)/eval.json \
		--froc $(NODULES_WORK)/froc.json --out resources/models/lucida-lung-nodules

# Fuzz the import path (not part of check; tests/fuzz/README.md): FUZZ_SECONDS=3600 make fuzz.
# Findings go to .fuzz/findings/; the regression files they became are replayed by `make check`.
FUZZ_SECONDS ?= 600
fuzz: setup
	$(BIN)/python -m pip install -q -e '.[fuzz]'
	nice -n 10 $(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

# The packaged app (issue 19): PyInstaller bundle in dist/lucida with build_info.json, SBOM
# and notices; `package-test` checks it offline, builds the .deb and .tar.xz into dist/ and
# checks those (packaging/package_test.sh; REUSE_BUNDLE=1 keeps a fresh dist/lucida).
package: setup
	$(BIN)/python -m pip install -q -e '.[package]'
	./packaging/linux/build_bundle.sh

package-test: setup
	$(BIN)/python -m pip install -q -e '.[package]'
	./packaging/package_test.sh

# In `make check` only when packaging/ or pyproject.toml changed in the last commit (or
# when git cannot tell), or with LUCIDA_PACKAGE_TEST=1; it adds about 5 minutes.
package-test-if-changed:
	@if [ "$${LUCIDA_PACKAGE_TEST:-}" = 1 ] || \
		! git diff --quiet HEAD~1 HEAD -- packaging pyproject.toml 2>/dev/null; then \
		$(MAKE) --no-print-directory package-test; \
	else echo "package-test skipped: packaging/ and pyproject.toml unchanged (LUCIDA_PACKAGE_TEST=1 runs it)"; fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
