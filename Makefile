# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Blender as a Python module, one venv per version, cached outside the clone (1-2 GB each).
BPY_CACHE ?= $(HOME)/.cache/kling-elements
BPY_VERSIONS ?= 4.2.23 5.0.1
ADDON_DEPS := httpx pyjwt numpy pillow av starlette uvicorn python-multipart scipy pytest hypothesis

.PHONY: test test-core test-addon extension demo lint bench bench-ui clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sandbox,video,dev]'
	touch $(STAMP)

test: test-core test-addon

test-core: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# Blender as a module, installed once per version; its bl_pkg also builds and validates extensions.
BPY_STAMPS := $(foreach v,$(BPY_VERSIONS),$(BPY_CACHE)/bpy-$(v)/.installed)
BPY_NEWEST := $(BPY_CACHE)/bpy-$(lastword $(BPY_VERSIONS))

$(BPY_CACHE)/bpy-%/.installed:
	rm -rf $(@D)
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet bpy==$* $(ADDON_DEPS)
	touch $@
.PRECIOUS: $(BPY_CACHE)/bpy-%/.installed

# dist/<id>-<version>.zip for "Install from Disk": add-on, manifest, wheels for every platform.
# Wheels are cached in $(BPY_CACHE)/wheels; EXTENSION_FLAGS=--split-platforms adds per-platform zips.
EXTENSION_FLAGS ?=
extension: $(BPY_NEWEST)/.installed
	BPY_CACHE=$(BPY_CACHE) $(BPY_NEWEST)/bin/python scripts/build_extension.py $(EXTENSION_FLAGS)

# The add-on's tests inside Blender's own Python, for the oldest and newest supported series;
# each series' own validator checks the extension zip first.
test-addon: extension $(BPY_STAMPS)
	@set -e; for v in $(BPY_VERSIONS); do \
	  venv=$(BPY_CACHE)/bpy-$$v; \
	  echo "== add-on tests under bpy $$v"; \
	  BPY_CACHE=$(BPY_CACHE) $$venv/bin/python scripts/build_extension.py --validate; \
	  home=$$(mktemp -d); \
	  HOME=$$home PYTHONPATH=$(CURDIR)/core:$(CURDIR) $$venv/bin/python -m pytest -q -p no:cacheprovider tests/addon; \
	  rm -rf $$home; \
	done

lint: $(STAMP)
	$(PY) -m ruff check .

demo: $(STAMP)
	$(PY) scripts/demo.py --out demo-output

bench: $(STAMP)
	$(PY) scripts/bench_rle.py
	$(PY) scripts/bench_conform.py

bench-ui: test-addon
	HOME=$$(mktemp -d) PYTHONPATH=$(CURDIR)/core:$(CURDIR) \
	  $(BPY_CACHE)/bpy-$(lastword $(BPY_VERSIONS))/bin/python scripts/bench_ui_thread.py

clean:
	rm -rf $(VENV) demo-output dist build *.egg-info
