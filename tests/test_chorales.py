"""The four-voice chorale corpus: what the committed script makes, with the voices, keys and fermatas kept."""

import itertools
import subprocess
import sys

import pretty_midi

from tests.conftest import REPO

CHORALES = REPO / "chorales"


def test_the_committed_chorales_are_what_the_script_makes(tmp_path):
    proc = subprocess.run([sys.executable, "pipelines/build_chorale_corpus.py", "--out", str(tmp_path), "--limit",
                           "10"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    made = sorted(tmp_path.glob("*/*.mid"))
    assert [p.relative_to(tmp_path) for p in made][:1] == [p.relative_to(CHORALES) for p in
                                                             sorted(CHORALES.glob("heldout/*.mid"))][:1]
    assert len(made) == 10 and all(p.read_bytes() == (CHORALES / p.relative_to(tmp_path)).read_bytes() for p in made)


def test_every_chorale_has_four_single_line_voices_a_key_and_fermatas():
    train, heldout = (sorted(p.stem for p in (CHORALES / split).glob("*.mid")) for split in ("train", "heldout"))
    assert len(train) == 315 and len(heldout) == 35 and not set(train) & set(heldout)
    with_fermatas = 0
    for path in sorted(CHORALES.glob("*/*.mid")):
        midi = pretty_midi.PrettyMIDI(str(path))
        assert [track.name for track in midi.instruments] == ["Soprano", "Alto", "Tenor", "Bass"], path.name
        for track in midi.instruments:
            notes = sorted(track.notes, key=lambda n: n.start)
            assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(notes)), (path.name, track.name)
        soprano, bass = (sum(n.pitch for n in t.notes) / len(t.notes) for t in midi.instruments[::3])
        assert soprano > bass + 12, path.name
        assert len(midi.key_signature_changes) == 1 and midi.time_signature_changes, path.name
        with_fermatas += any(event.text == "fermata" for event in midi.text_events)
    assert with_fermatas >= 347  # three settings (bwv112.5, two from the Christmas Oratorio) have none
