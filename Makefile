# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Blender as a Python module, one venv per version, cached outside the clone (1-2 GB each).
# `make test`: the oldest LTS at its first point release (4.2.0, whose extension installer is
# the oldest), the newest LTS and the newest release. `make test-addon-more`: the others we
# support, each series' first point release among them (where each zip's version bounds
# meet). Any list works: make test-addon BPY_VERSIONS="4.2.23 5.0.1".
BPY_CACHE ?= $(HOME)/.cache/kling-elements
BPY_VERSIONS ?= 4.2.0 5.2.4 5.3.0
BPY_MORE_VERSIONS ?= 4.5.0 4.5.15 5.0.1 5.1.0 5.2.0
# The extras (pyproject.toml) the add-on's tests need inside each Blender Python.
ADDON_EXTRAS := sandbox video test
# A venv made before those requirements changed gets the new ones (with its bpy pinned, so pip
# keeps the numpy that bpy needs) without reinstalling bpy.
ADDON_DEPS_ID := $(shell $(PYTHON) scripts/requirements.py $(ADDON_EXTRAS) | cksum | cut -d' ' -f1)

# bpy 4.2-5.0 run on CPython 3.11, 5.1 and later on 3.13. The first candidate that really is
# that version wins (a pyenv shim exists for every installed version but fails unless selected).
python_named = $(firstword $(foreach p,$(2),$(shell $(p) -c \
  'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(1)")' >/dev/null 2>&1 && echo $(p))))
PYENV_ROOT_DIR := $(or $(PYENV_ROOT),$(HOME)/.pyenv)
PYTHON311 ?= $(call python_named,3.11,python3.11 /usr/bin/python3.11 /usr/local/bin/python3.11 \
  $(wildcard $(PYENV_ROOT_DIR)/versions/3.11*/bin/python3.11))
PYTHON313 ?= $(call python_named,3.13,python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13 \
  $(wildcard $(PYENV_ROOT_DIR)/versions/3.13*/bin/python3.13))

.PHONY: test test-core check test-addon test-addon-more test-addon-45 extension demo lint bench \
  bench-polling bench-ui bench-click clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sandbox,video,dev]'
	touch $(STAMP)

test: test-core test-addon

# Every test but the add-on's inside Blender (tests/addon skips itself without bpy), slow ones too.
test-core: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The edit-test loop (about 85 CPU-seconds over 2 workers): lint, then the tests
# without Blender and without those marked slow, on CHECK_WORKERS processes (pytest-xdist; a
# file stays on one, so its module fixtures start once). `make test` is the gate.
CHECK_WORKERS ?= 2
check: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" -n $(CHECK_WORKERS) --dist loadfile

# Blender as a module, installed once per version; its bl_pkg also builds and validates extensions.
BPY_STAMPS := $(foreach v,$(BPY_VERSIONS),$(BPY_CACHE)/bpy-$(v)/.deps-$(ADDON_DEPS_ID))
BPY_NEWEST := $(BPY_CACHE)/bpy-$(lastword $(BPY_VERSIONS))

$(BPY_CACHE)/bpy-%/.installed:
	@case "$*" in 4.*|5.0.*) want=3.11 py="$(PYTHON311)" ;; *) want=3.13 py="$(PYTHON313)" ;; esac; \
	if [ -z "$$py" ]; then \
	  echo "bpy $* needs CPython $$want, none found: install it (e.g. pyenv install $$want)" \
	    "or pass PYTHON$${want%.*}$${want#*.}=/path/to/python$$want" >&2; exit 1; \
	fi; \
	echo "== installing bpy $* with $$py"; \
	rm -rf $(@D) && $$py -m venv $(@D) && \
	deps=$$($(@D)/bin/python scripts/requirements.py $(ADDON_EXTRAS)) && \
	$(@D)/bin/python -m pip install --quiet bpy==$* $$deps
	touch $@
.PRECIOUS: $(BPY_CACHE)/bpy-%/.installed

$(BPY_CACHE)/bpy-%/.deps-$(ADDON_DEPS_ID): $(BPY_CACHE)/bpy-%/.installed
	deps=$$($(@D)/bin/python scripts/requirements.py $(ADDON_EXTRAS)) && \
	$(@D)/bin/python -m pip install --quiet bpy==$* $$deps
	touch $@
.PRECIOUS: $(BPY_CACHE)/bpy-%/.deps-$(ADDON_DEPS_ID)

# dist/<id>-<version>-blender-4.2-to-5.0.zip and -blender-5.1-and-later.zip for "Install from
# Disk": add-on, manifest, wheels for every platform, one zip per Blender Python. Wheels are
# cached in $(BPY_CACHE)/wheels; EXTENSION_FLAGS=--split-platforms adds per-platform zips.
EXTENSION_FLAGS ?=
extension: $(BPY_NEWEST)/.installed
	BPY_CACHE=$(BPY_CACHE) $(BPY_NEWEST)/bin/python scripts/build_extension.py $(EXTENSION_FLAGS)

# The add-on's tests inside Blender's own Python, for each of BPY_VERSIONS; each version's own
# validator checks the extension zips first, and tests/addon/test_extension.py installs the
# zip for that version.
test-addon: extension $(BPY_STAMPS)
	@set -e; for v in $(BPY_VERSIONS); do \
	  venv=$(BPY_CACHE)/bpy-$$v; \
	  echo "== add-on tests under bpy $$v"; \
	  BPY_CACHE=$(BPY_CACHE) $$venv/bin/python scripts/build_extension.py --validate; \
	  home=$$(mktemp -d); \
	  HOME=$$home PYTHONPATH=$(CURDIR)/core:$(CURDIR) $$venv/bin/python -m pytest -q -p no:cacheprovider tests/addon; \
	  rm -rf $$home; \
	done

test-addon-more:
	$(MAKE) test-addon BPY_VERSIONS="$(BPY_MORE_VERSIONS)"

# The 4.5 LTS alone.
test-addon-45:
	$(MAKE) test-addon BPY_VERSIONS="$(filter 4.5.%,$(BPY_MORE_VERSIONS))"

lint: $(STAMP)
	$(PY) -m ruff check .

demo: $(STAMP)
	$(PY) scripts/demo.py --out demo-output

# Each script prints its ratio to a reference measured in the same run last (README,
# "Performance"). bench-ui and bench-click run inside Blender's Python (the newest bpy).
bench: $(STAMP)
	$(PY) scripts/bench_rle.py
	$(PY) scripts/bench_overlay.py
	$(PY) scripts/bench_polling.py
	$(PY) scripts/bench_conform.py

# Queries per task and delay to notice its end: polling (before/after) vs callbacks.
bench-polling: $(STAMP)
	$(PY) scripts/bench_polling.py

# The main thread's longest hold over an editor's session at 2160x2160 (a few minutes).
bench-ui: $(BPY_NEWEST)/.installed
	HOME=$$(mktemp -d) PYTHONPATH=$(CURDIR)/core:$(CURDIR) \
	  $(BPY_NEWEST)/bin/python scripts/bench_ui_thread.py

# A click to its mask ready to draw, stage by stage, at 720p and 2160x2160.
bench-click: $(BPY_NEWEST)/.installed
	HOME=$$(mktemp -d) PYTHONPATH=$(CURDIR)/core:$(CURDIR) \
	  $(BPY_NEWEST)/bin/python scripts/bench_click.py

clean:
	rm -rf $(VENV) demo-output dist build *.egg-info
