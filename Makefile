# Every target is idempotent: a second run only checks and returns.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache

.PHONY: setup venv npm browser vulkan emulation ssh demo check test coverage lint unit bench clean

setup: venv npm browser vulkan emulation ssh

# Python: the exact set in requirements.lock (pyproject gives the compatible ranges),
# installed by uv (pinned there too): the same set as pip would install, downloaded and
# unpacked in parallel, a fresh venv in a third of pip's time. It compiles the bytecode
# as pip does: where PYTHONDONTWRITEBYTECODE is set, a venv without it compiles
# TensorFlow from source on every import (10 s instead of 4.5 s a process).
venv: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c requirements.lock -e '.[dev,tfjs,android,onnx]'
	touch $@

# TF.js for the web page and the Node runtime, from the lock file.
npm: web_demo/node_modules/.installed
web_demo/node_modules/.installed: web_demo/package.json web_demo/package-lock.json
	cd web_demo && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser runtime and tests (no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's Vulkan loader: LiteRT's GPU accelerator (litert-gpu) reaches a Vulkan device
# through it; with no GPU, the device is the SwiftShader driver Chromium installs.
vulkan: browser
	@test -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 || test -e /usr/lib/aarch64-linux-gnu/libvulkan.so.1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libvulkan1 >/dev/null; }

# Debian's OpenSSH: the client `cnnx bench --remote` runs; the server for the test that
# benches an emulated Pi over SSH (started on its own port and config, never the system's).
ssh:
	@test -x /usr/sbin/sshd && command -v ssh >/dev/null && command -v scp >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-client openssh-server >/dev/null; }

# aarch64 userspace + LiteRT under qemu, for the Raspberry Pi proof (cached in .cache/).
emulation:
	bash scripts/setup_emulation.sh $(CACHE)/emulation

demo: setup
	$(BIN)/cnnx demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy toolkit exporters

# The quick tier: lint, types and every test that needs no TensorFlow, Node, Chromium or
# qemu (tests/conftest.py puts a test there by its markers and fixtures; one that imports
# TensorFlow anyway fails). Needs only the venv.
check: lint
	$(BIN)/pytest -q -n auto --dist loadfile --tier check

# The whole suite: lint, types, unit, node, browser, emulation and android tests. One
# worker more than cores: tests spend part of their time waiting on a page, a node or a
# process start, and the extra worker runs then (one file per worker, longest first).
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: setup lint
	$(BIN)/pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder

# The full tier under coverage: the test workers and every CLI they start are measured
# (pyproject.toml [tool.coverage.run]); the report covers toolkit/ and exporters/.
coverage: setup lint
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder; \
	status=$$?; $(BIN)/coverage combine -q && $(BIN)/coverage report; exit $$status

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) web_demo/node_modules $(CACHE) cnnx-demo
