# recall-lab: the README's two commands, `make run` and `make test`, each doing all set-up on a
# fresh Debian/Ubuntu machine (as root, or with sudo).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Qt (offscreen and under Xvfb), PortAudio for sounddevice, libsndfile, ffmpeg for video; for the
# real-input tests (tests/realinput: the app on Xvfb under a window manager, keys and clicks
# through XTEST) and the key-injection benchmark: openbox, xdotool, x11-utils (xprop, xwininfo),
# libxtst6 (XTEST) and libxi6 (XInput2).
APT_PACKAGES := python3-venv libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 \
	libglib2.0-0 libxkbcommon0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 \
	libxkbcommon-x11-0 xvfb xauth libportaudio2 libsndfile1 ffmpeg xdotool openbox x11-utils \
	libxi6 libxtst6

.PHONY: run test test-slow test-all bench lint format install system-deps clean demo screenshots

install: system-deps $(STAMP)

system-deps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "no apt-get: install the equivalents of: $(APT_PACKAGES)"; fi

# torch first, from its pinned CPU wheel: an unpinned torch pulls gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "recall-lab needs Python 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q "setuptools<81" wheel
	$(BIN)/pip install -q -e ".[app,decode,generate,test,bench,capture]"
	touch $@

# The main job: the console on the synthetic board, or the headless demo without a display.
run: install
	$(BIN)/recall-lab app --or-demo

test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

test-slow: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m slow

test-all: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "slow or not slow"

demo: install
	$(BIN)/recall-lab demo --time-scale 0.1

screenshots: install
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m app.screenshots docs/screenshots

bench: install
	$(BIN)/python benchmarks/run_all.py

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
