"""Stage 4: MIDI -> WAV with real FluidSynth and a real General MIDI soundfont."""

import wave

import numpy as np
import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.writing.render import render_wav
from tests.conftest import PHRASES, write_song


def test_rendered_wav_is_not_silence(tmp_path):
    wav_path = render_wav(write_song(tmp_path / "song.mid", PHRASES[0] * 2))
    with wave.open(str(wav_path)) as wav:
        assert wav.getframerate() == 44100
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float64)
    assert len(samples) > 44100  # 16 tokens at 0.25 s plus the release
    assert np.sqrt(np.mean(samples**2)) > 100  # clearly audible, not digital silence


def test_render_errors_name_the_file(tmp_path):
    with pytest.raises(PianoComposerError, match="no such MIDI file"):
        render_wav(tmp_path / "missing.mid")
    with pytest.raises(PianoComposerError, match="soundfont not found"):
        render_wav(write_song(tmp_path / "s.mid", PHRASES[0]), soundfont=tmp_path / "none.sf2")
