# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing, installs the pinned CPU torch first (an unpinned
# torch would pull several GB of CUDA packages), then the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lcid demo --out demo_out

test: $(STAMP)
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) demo_out
