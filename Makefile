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

.PHONY: run test test-slow test-all bench lint format install system-deps clean demo screenshots \
	audiocraft-env test-audiocraft

# The optional audiocraft music backend (docs/generation.md#music-backends) lives in its own
# environment: audiocraft 1.3.0 pins torch 2.1 and numpy<2 and builds `av` 11 from source against
# the FFmpeg headers. Never part of `make install` / `make test`.
AC_VENV  := .venv-audiocraft
AC_BIN   := $(AC_VENV)/bin
AC_STAMP := $(AC_VENV)/.installed
AC_APT_PACKAGES := python3-venv pkg-config libavformat-dev libavcodec-dev libavdevice-dev \
	libavutil-dev libavfilter-dev libswscale-dev libswresample-dev
# torch 2.1 predates transformers' later torch>=2.2 floor; 4.44 still has EnCodec and T5 for it.
AC_PIP_PINS := "numpy<2" "transformers>=4.31,<4.45" "audiocraft==1.3.0"

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

audiocraft-env: $(AC_STAMP)

# torch, torchaudio and torchvision from the PyTorch CPU index first (the PyPI torch 2.1 is the
# CUDA build and pulls ~2.5 GB of nvidia-* wheels); audiocraft's own pins (torch==2.1.0,
# torchaudio<2.1.2) then accept them as is. Where that index cannot be reached, PyPI's build.
AC_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
AC_TORCH := torch==2.1.0 torchaudio==2.1.0 torchvision==0.16.0
$(AC_STAMP): Makefile
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(AC_APT_PACKAGES)"
	$(PYTHON) -m venv $(AC_VENV)
	$(AC_BIN)/pip install -q --upgrade "pip>=24" "setuptools<70" wheel
	$(AC_BIN)/pip install --progress-bar off --retries 1 --index-url $(AC_TORCH_INDEX) $(AC_TORCH) \
	  || { echo "$(AC_TORCH_INDEX) unreachable: PyPI's torch 2.1.0 (CUDA build, ~2.5 GB)"; \
	       $(AC_BIN)/pip install --progress-bar off $(AC_TORCH); }
	$(AC_BIN)/pip install --progress-bar off $(AC_PIP_PINS)
	$(AC_BIN)/python -c "import audiocraft, torch; print('audiocraft', audiocraft.__version__, 'torch', torch.__version__)"
	touch $@

test-audiocraft: install audiocraft-env
	$(BIN)/python -m pytest -q -m audiocraft tests/test_generation_audiocraft.py

# The main job: the console on the synthetic board, or the headless demo without a display.
run: install
	$(BIN)/recall-lab app --or-demo

test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

test-slow: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m slow

test-all: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "(slow or not slow) and not audiocraft"

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
	rm -rf $(VENV) $(AC_VENV) build *.egg-info .pytest_cache
