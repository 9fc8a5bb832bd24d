# Set-up and the everyday jobs. `make demo` and `make test` are the two commands in README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_WEIGHTS := output/demo-model

.PHONY: install system-deps browser-deps demo demos test lint corpus bench clean

install: system-deps $(VENV)/.installed

# FluidSynth and a General MIDI soundfont, and abcMIDI's abc2midi (the independent check of abc tunes), from the
# system's package manager.
system-deps:
	@if command -v fluidsynth >/dev/null && command -v abc2midi >/dev/null && { [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ -n "$$PIANOCOMPOSER_SOUNDFONT" ]; }; then \
		echo "fluidsynth, a soundfont and abc2midi are installed"; \
	elif command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm abcmidi; \
	elif command -v brew >/dev/null; then \
		brew install fluid-synth abcmidi && echo "set PIANOCOMPOSER_SOUNDFONT to a General MIDI .sf2 file"; \
	else \
		echo "install FluidSynth and a General MIDI soundfont with your package manager" >&2; exit 1; \
	fi

# Chromium and its driver for the gallery's browser test (tests/test_demos.py skips it without them).
browser-deps:
	@if [ -x /usr/bin/chromedriver ] || ! command -v apt-get >/dev/null; then \
		echo "chromedriver is installed (or this is not Debian/Ubuntu)"; \
	else \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'  # every extra (train, eval, ray) and the test tools
	touch $@

# The main job on the embedded corpus: extract -> train (quick preset) -> generate 500 tokens -> WAV.
demo: install
	$(BIN)/pianocomposer extract --input midi_songs --out data
	$(BIN)/pianocomposer train --data data --weights $(DEMO_WEIGHTS) --preset quick --epochs 20 --transpose=-3..3 --max-minutes 8
	$(BIN)/pianocomposer generate --weights $(DEMO_WEIGHTS) --length 500 --out output
	@echo "Done: MIDI and WAV files are in output/, the model in $(DEMO_WEIGHTS)/."

# A gallery of pieces from every default model (pipelines/demos.toml): output/demos/index.html.
demos: install
	$(BIN)/pianocomposer demos --config pipelines/demos.toml --out output/demos

test: install browser-deps
	$(BIN)/ruff check pianocomposer tests pipelines benchmarks
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: install
	$(BIN)/ruff check pianocomposer tests pipelines benchmarks

corpus: install
	$(BIN)/python pipelines/build_corpus.py --out midi_songs
	$(BIN)/python pipelines/build_abc_corpus.py --out abc_tunes
	$(BIN)/python pipelines/build_chorale_corpus.py --out chorales

clean:
	rm -rf data output .pytest_cache .ruff_cache
