"""What every registered encoding promises, tested by being registered (as MidiTok loops over its tokenizations): it
reads one of the repo's corpora, its tokens survive a round trip through its own files, its primers come from its
pieces, any sequence its vocabulary can make decodes or is refused as unplayable, and its capabilities hold."""

import numpy as np
import pretty_midi
import pytest

from pianocomposer.encodings import ENCODINGS, get_encoding
from pianocomposer.errors import PianoComposerError, Unplayable
from tests.conftest import REPO

CORPORA = [REPO / "midi_songs", REPO / "chorales" / "heldout", REPO / "abc_tunes" / "heldout"]


def first_piece(encoding) -> list[str]:
    """The first piece of the first corpus file the encoding reads."""
    for corpus in CORPORA:
        for path in sorted(p for p in corpus.rglob("*") if p.suffix.lower() in encoding.suffixes)[:3]:
            songs = [s for s in encoding.read_songs(path) if "tokens" in s]
            if songs:
                return songs[0]["tokens"]
    raise AssertionError(f"{encoding.name} reads none of {[str(c) for c in CORPORA]}")


@pytest.fixture(scope="module", params=sorted(ENCODINGS))
def encoded(request):
    encoding = get_encoding(request.param)
    return encoding, first_piece(encoding)


def test_tokens_survive_a_round_trip_through_the_encodings_own_file(encoded, tmp_path):
    encoding, tokens = encoded
    midi = encoding.decode(tokens)
    assert sum(len(t.notes) for t in midi.instruments) > 0
    if encoding.text_suffix:  # a text encoding's file is its text
        path = tmp_path / f"piece{encoding.text_suffix}"
        path.write_text(encoding.text(tokens))
    else:
        path = tmp_path / "piece.mid"
        midi.write(str(path))
    assert next(s["tokens"] for s in encoding.read_songs(path) if "tokens" in s) == tokens


def test_primers_come_from_the_pieces_and_differ_by_seed(encoded):
    encoding, tokens = encoded
    primers, labels = encoding.start([tokens, tokens[::-1]], 4, np.random.default_rng(0))
    assert len(primers) == len(labels) == 4
    vocabulary = set(tokens) | set(encoding.full_vocabulary() or []) | {encoding.end_token}
    for primer in primers:
        assert primer and set(primer) <= vocabulary | set(encoding.start([tokens], 1, np.random.default_rng(1))[0][0])


def test_any_sequence_of_its_tokens_decodes_or_is_refused_as_unplayable(encoded):
    encoding, tokens = encoded
    vocabulary = sorted(set(tokens))
    rng = np.random.default_rng(0)
    for _ in range(20):
        sampled = list(rng.choice(vocabulary, 120))
        primer = encoding.start([tokens], 1, rng)[0][0]
        try:
            midi = encoding.decode(encoding.finish(primer, sampled))
        except Unplayable:
            continue
        assert isinstance(midi, pretty_midi.PrettyMIDI)


def test_transposing_by_nothing_keeps_every_token_and_there_and_back_is_the_identity(encoded):
    encoding, tokens = encoded
    assert [encoding.transpose(t, 0) for t in tokens] == tokens
    try:
        up = [encoding.transpose(t, 2) for t in tokens]
    except PianoComposerError as error:  # an encoding that cannot transpose says so in one line
        assert "transpose" in str(error) and "\n" not in str(error)
        return
    kept = [t for t, u in zip(tokens, up, strict=True) if u is not None]
    assert [encoding.transpose(u, -2) for u in up if u is not None] == kept


def test_capabilities_hold(encoded):
    encoding, tokens = encoded
    if encoding.bars_in_tokens:
        cut = encoding.cut_at_bar(tokens, 2)
        assert cut is not None and len(cut) < len(tokens)
    if encoding.header_fields:
        assert encoding.constraint(sorted(set(tokens)), {"M": "2/4"}) is not None
    if encoding.harmonizes:
        assert callable(getattr(encoding, "frames", None))
    if encoding.full_vocabulary() is not None:
        assert set(tokens) <= set(encoding.full_vocabulary())
    assert encoding.outputs[-2:] == (".mid", ".wav")
