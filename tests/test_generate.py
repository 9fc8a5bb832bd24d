"""Stage 3: incremental generation, sampling, primers, loop rate."""

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pretty_midi
import pytest

from pianocomposer.composing.compose import Composer, Sampler, continue_sequences
from pianocomposer.config import DEFAULT_WEIGHTS_DIR, shipped_bundle
from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.generate import generate, reserve_stems
from pianocomposer.judging.metrics import loop_rate
from pianocomposer.learning.bundle import load_bundle, resolve_weights
from tests.conftest import PHRASES, write_song


def test_incremental_greedy_equals_recomputing_the_whole_window(bundle_dir):
    bundle = load_bundle(bundle_dir)
    seed = bundle.vocabulary.encode(bundle.meta["seeds"][0][:12])
    fast = continue_sequences(bundle.step_model(), [seed], 30, Sampler(greedy=True), np.random.default_rng())
    sequence, slow = list(seed), []
    for _ in range(30):  # the original's loop: the whole sequence through the Keras network for every token
        probs = np.asarray(bundle.model(np.array([sequence], np.int32), training=False))[0, -1]
        slow.append(int(probs.argmax()))
        sequence.append(slow[-1])
    assert fast[0].tolist() == slow


def test_generate_writes_pieces_with_the_asked_number_of_events(bundle_dir, tmp_path):
    result = generate(bundle_dir, tmp_path, length=40, num_outputs=3, seed=1, wav=False, progress=False)
    assert len(result.pieces) == 3 and len({p.midi for p in result.pieces}) == 3
    for piece in result.pieces:
        onsets = {round(n.start, 4) for n in pretty_midi.PrettyMIDI(str(piece.midi)).instruments[0].notes}
        assert len(piece.tokens) == 40 and len(onsets) == 40
    again = generate(bundle_dir, tmp_path, length=40, num_outputs=3, seed=1, wav=False, progress=False)
    assert [p.tokens for p in again.pieces] == [p.tokens for p in result.pieces]  # --seed reproduces
    assert not {p.midi for p in again.pieces} & {p.midi for p in result.pieces}  # and never overwrites
    other = generate(bundle_dir, tmp_path, length=40, num_outputs=3, seed=2, wav=False, progress=False)
    assert [p.tokens for p in other.pieces] != [p.tokens for p in result.pieces]
    assert set(result.to_json()["seconds"]) == {"load", "generate", "write", "render"}


def test_sampler_min_p_keeps_tokens_near_the_likeliest():
    rng = np.random.default_rng(0)
    probs = np.tile([0.5, 0.3, 0.12, 0.08], (4000, 1))
    draws = Sampler(top_p=1.0, min_p=0.2)(probs, rng)  # 0.2 x 0.5 = 0.1: the 0.08 token is never drawn
    assert set(draws.tolist()) == {0, 1, 2}
    assert np.bincount(draws)[0] / len(draws) == pytest.approx(0.5 / 0.92, abs=0.03)
    assert set(Sampler(top_p=1.0, min_p=0.9)(probs, rng).tolist()) == {0}
    with pytest.raises(PianoComposerError, match="min-p"):
        Sampler(min_p=1.0).check()


def test_sampler_top_k_one_is_greedy_and_top_p_truncates():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(20), size=64)
    assert np.array_equal(Sampler(top_k=1, top_p=1.0)(probs, rng), probs.argmax(axis=1))
    assert np.array_equal(Sampler(top_p=1e-6)(probs, rng), probs.argmax(axis=1))
    draws = Sampler(top_k=3, top_p=1.0)(np.tile(probs[:1], (2000, 1)), rng)
    assert set(draws.tolist()) == set(np.argsort(-probs[0])[:3].tolist())


def test_primers_from_tokens_and_midi(bundle_dir, tmp_path):
    by_tokens = generate(bundle_dir, tmp_path, length=10, primer_tokens="C4 E4 C#9", seed=0, wav=False,
                         progress=False)
    assert by_tokens.pieces[0].primer == "--primer-tokens"
    primer = write_song(tmp_path / "primer.mid", PHRASES[0])
    by_midi = generate(bundle_dir, tmp_path, length=10, primer=primer, seed=0, wav=False, progress=False)
    alone = generate(bundle_dir, tmp_path, length=10, seed=0, wav=False, progress=False)
    assert len(by_midi.pieces[0].tokens) == 10
    # the primer leads the piece: the same seed without it (or with the other primer) writes another piece
    assert len({tuple(r.pieces[0].tokens) for r in (by_tokens, by_midi, alone)}) == 3
    with pytest.raises(PianoComposerError, match="no usable notes"):
        generate(bundle_dir, tmp_path, length=10, primer_tokens="1.6 xyz", wav=False, progress=False)


def test_bad_settings_are_clear_errors(bundle_dir, tmp_path):
    for kwargs, message in [({"length": 0}, "--length"), ({"num_outputs": 0}, "--num-outputs"),
                            ({"sampler": Sampler(temperature=0)}, "--temperature"), ({"program": 128}, "--program")]:
        with pytest.raises(PianoComposerError, match=message):
            generate(bundle_dir, tmp_path, wav=False, progress=False, **kwargs)
    assert not list(tmp_path.iterdir())


def test_loop_rate():
    assert loop_rate(["C4"] * 10 + ["D4", "E4"]) == pytest.approx(10 / 12)
    assert loop_rate(["C4", "E4"] * 8) == 1.0
    assert loop_rate(["C4", "E4"] * 3) == 0.0
    assert loop_rate([str(i) for i in range(50)]) == 0.0
    assert loop_rate([]) == 0.0


def test_a_composer_loads_once_and_composes_as_generate_does(bundle_dir, tmp_path):
    composer = Composer(bundle_dir)
    first = generate(composer, tmp_path, length=25, num_outputs=2, seed=3, wav=False, progress=False)
    again = generate(composer, tmp_path, length=25, num_outputs=2, seed=3, wav=False, progress=False)
    fresh = generate(bundle_dir, tmp_path, length=25, num_outputs=2, seed=3, wav=False, progress=False)
    assert [p.tokens for p in first.pieces] == [p.tokens for p in again.pieces] == [p.tokens for p in fresh.pieces]
    assert first.bundle == again.bundle == composer.folder == bundle_dir


def test_a_shipped_bundle_is_found_by_name(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights/ here: the shipped default
    assert resolve_weights(None) == shipped_bundle()
    shutil.copytree(bundle_dir, tmp_path / DEFAULT_WEIGHTS_DIR)  # a model trained into weights/ comes first
    assert resolve_weights(None) == DEFAULT_WEIGHTS_DIR
    assert resolve_weights("timed") == shipped_bundle("timed")
    assert resolve_weights(tmp_path / "timed") == tmp_path / "timed"  # a path is never replaced


def test_runs_at_once_never_take_the_same_file_names(tmp_path):
    with ThreadPoolExecutor(8) as pool:  # eight runs in the same second, five pieces each
        runs = list(pool.map(lambda _: reserve_stems(tmp_path, "piece-x", 5, (".mid", ".wav")), range(8)))
    stems = [stem for run in runs for stem in run]
    assert len(set(stems)) == 40 and all((tmp_path / f"{stem}.mid").is_file() for stem in stems)
    (tmp_path / "piece-x-41.wav").write_bytes(b"")  # a name used by any of the suffixes is not taken
    assert reserve_stems(tmp_path, "piece-x", 1, (".mid", ".wav")) == ["piece-x-42"]


def test_a_musicxml_primer_starts_the_piece(bundle_dir, tmp_path):
    from music21 import note, stream

    melody = stream.Stream([note.Note(p, quarterLength=1) for p in ("C4", "E4", "G4", "C5")])
    melody.write("musicxml", fp=tmp_path / "primer.musicxml")
    result = generate(bundle_dir, tmp_path, length=10, primer=tmp_path / "primer.musicxml", seed=1, wav=False,
                      progress=False)
    assert result.pieces[0].primer == str(tmp_path / "primer.musicxml") and len(result.pieces[0].tokens) == 10
    alone = generate(bundle_dir, tmp_path, length=10, seed=1, wav=False, progress=False)
    assert result.pieces[0].tokens != alone.pieces[0].tokens
