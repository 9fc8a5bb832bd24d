"""Fuzzing extract with mutated MIDI bytes: every file becomes tokens or a named skip; nothing else escapes.

A short run for CI; benchmarks/fuzz_extract.py runs the same mutations for thousands of inputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pianocomposer.errors import PianoComposerError
from pianocomposer.reading.extract import extract
from tests.hostile_midi import GOOD_TOKENS, MUTATIONS, SEEDS, good_bytes, mutate

MUTATION = st.tuples(st.sampled_from(MUTATIONS),
                     st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
MUTANT = st.tuples(st.sampled_from(range(len(SEEDS))), st.lists(MUTATION, min_size=1, max_size=4))


def check_contract(folder: Path, names: list[str], control: bool) -> None:
    """extract returns a song or a one-line skip for each file, or (only if no file is usable) a clear error."""
    try:
        data = extract(folder, folder / "out", timeout_s=2, workers=2, progress=False)
    except PianoComposerError as exc:
        assert not control, f"the untouched control song was usable, yet: {exc}"
        assert "no usable music file" in str(exc)
        return
    seen = [s.source for s in data.songs] + [s.source for s in data.skipped]
    assert sorted(seen) == sorted(names), "each file exactly once"
    for song in data.songs:
        assert song.tokens and all(isinstance(t, str) and t for t in song.tokens)
    for skip in data.skipped:
        assert skip.reason and "\n" not in skip.reason
    if control:
        assert {s.source: s.tokens for s in data.songs}["control.mid"] == GOOD_TOKENS


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants=st.lists(MUTANT, min_size=1, max_size=3), control=st.booleans())
def test_mutated_midi_is_extracted_or_skipped(mutants, control):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = []
        for i, (seed, mutations) in enumerate(mutants):
            names.append(f"m{i}.mid")
            (folder / names[-1]).write_bytes(mutate(SEEDS[seed], mutations))
        if control:
            names.append("control.mid")
            (folder / "control.mid").write_bytes(good_bytes())
        check_contract(folder, names, control)
