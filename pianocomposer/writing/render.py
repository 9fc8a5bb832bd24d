"""Stage 4: render MIDI to WAV with FluidSynth (through midi2audio) and a General MIDI soundfont."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from midi2audio import FluidSynth

from pianocomposer._util import quiet_fds
from pianocomposer.errors import PianoComposerError
from pianocomposer.writing.atomic import atomic_path

# Where Debian/Ubuntu (fluid-soundfont-gm), Fedora and Homebrew put a General MIDI soundfont.
SOUNDFONT_CANDIDATES = [
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/opt/homebrew/share/soundfonts/default.sf2"),
    Path("~/.fluidsynth/default_sound_font.sf2").expanduser(),
]
SAMPLE_RATE = 44100


def find_soundfont(soundfont: Path | None = None) -> Path:
    """The soundfont to use: the one given, $PIANOCOMPOSER_SOUNDFONT, or a system General MIDI soundfont."""
    if soundfont is None and os.environ.get("PIANOCOMPOSER_SOUNDFONT"):
        soundfont = Path(os.environ["PIANOCOMPOSER_SOUNDFONT"])
    if soundfont is not None:
        if not Path(soundfont).is_file():
            raise PianoComposerError(f"{soundfont}: soundfont not found")
        return Path(soundfont)
    for candidate in SOUNDFONT_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise PianoComposerError("no General MIDI soundfont found: run `make install` (Debian: apt-get install "
                             "fluid-soundfont-gm) or pass --soundfont PATH")


def render_wav(midi_path: Path, wav_path: Path | None = None, soundfont: Path | None = None) -> Path:
    """Synthesize midi_path to a 44.1 kHz WAV (default: same name, .wav) and return its path."""
    midi_path = Path(midi_path)
    wav_path = Path(wav_path) if wav_path else midi_path.with_suffix(".wav")
    if not midi_path.is_file():
        raise PianoComposerError(f"{midi_path}: no such MIDI file")
    if shutil.which("fluidsynth") is None:
        raise PianoComposerError("FluidSynth is not installed: run `make install` (Debian: apt-get install fluidsynth)")
    synth = FluidSynth(str(find_soundfont(soundfont)), sample_rate=SAMPLE_RATE)
    with atomic_path(wav_path) as tmp:
        with quiet_fds():  # FluidSynth prints a banner and warnings we do not want
            synth.midi_to_audio(str(midi_path), str(tmp))
        if tmp.stat().st_size <= 44:  # a bare WAV header: FluidSynth could not read the MIDI
            raise PianoComposerError(f"{midi_path}: FluidSynth produced no audio (not a playable MIDI file?)")
    return wav_path


def wav_to_ogg(wav_path: Path, ogg_path: Path) -> Path:
    """Encode a WAV file as Ogg Vorbis (what browsers play, a tenth of the size) and return its path."""
    import soundfile

    with atomic_path(ogg_path) as tmp, soundfile.SoundFile(wav_path) as source, \
            soundfile.SoundFile(tmp, "w", source.samplerate, source.channels, format="OGG", subtype="VORBIS") as ogg:
        for block in source.blocks(65536, dtype="float32"):  # one big write overflows libsndfile's Vorbis encoder
            ogg.write(block)
    return Path(ogg_path)
