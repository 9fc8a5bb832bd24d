"""The command line: results, --json and one-line errors without tracebacks."""

import json
import subprocess
import sys
import wave

import numpy as np
import pretty_midi
import soundfile

from tests.conftest import REPO, run_cli


def assert_one_line_error(proc, text):
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ") and text in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_user_errors_are_one_line(tmp_path):
    assert_one_line_error(run_cli("extract", "--input", tmp_path / "none"), "no such folder")
    assert_one_line_error(run_cli("extract", "--input", tmp_path), "no .mid or .midi or .abc files")
    (tmp_path / "w").mkdir()
    assert_one_line_error(run_cli("generate", "--weights", tmp_path / "w"), "no model bundle here")
    assert_one_line_error(run_cli("train", "--data", tmp_path), "no tokens file")


def test_extract_and_generate_json(midi_dir, bundle_dir, tmp_path):
    extracted = run_cli("extract", "--input", midi_dir, "--out", tmp_path / "d", "--json")
    assert extracted.returncode == 0, extracted.stderr
    assert json.loads(extracted.stdout)["ok"] == 6
    made = run_cli("generate", "--weights", bundle_dir, "--length", "30", "--num-outputs", "2", "--out",
                   tmp_path / "o", "--seed", "3", "--json")
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout)
    assert len(report["pieces"]) == 2 and report["tokens_per_s"] > 0
    for piece in report["pieces"]:
        assert piece["tokens"] == 30 and 0 <= piece["loop_rate"] <= 1
        audio, rate = soundfile.read(piece["wav"])
        # 30 tokens a half quarter apart at 120 qpm, the last a quarter long: 7.75 s, then the release
        assert 7.75 <= len(audio) / rate < 12 and np.sqrt(np.mean(audio**2)) > 0.01  # music, not silence


def test_extract_on_ray_without_ray_names_the_extra(tmp_path):
    no_ray = ("import sys; sys.modules['ray'] = None; sys.argv = ['pianocomposer', 'extract', '--input', "
              f"'{REPO / 'midi_songs'}', '--out', '{tmp_path}', '--engine', 'ray']; "
              "from pianocomposer.frontends.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", no_ray], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: --engine ray needs Ray: pip install 'pianocomposer[ray]'", proc.stderr


def test_generate_writes_the_program_asked_for_and_harmonize_its_wav_with_or_without_rules(tmp_path):
    piece = json.loads(run_cli("generate", "--weights", "timed", "--length", "40", "--program", "40", "--no-wav",
                               "--out", tmp_path, "--json").stdout)["pieces"][0]
    assert {t.program for t in pretty_midi.PrettyMIDI(piece["midi"]).instruments} == {40}  # a violin
    melody = REPO / "chorales" / "heldout" / "bwv113.8.mid"
    ruled, free = (json.loads(run_cli("harmonize", melody, *flags, "--out", tmp_path / name, "--json").stdout)[
        "harmonizations"][0] for name, flags in (("ruled", ["--no-wav"]), ("free", ["--no-rules"])))
    assert ruled["wav"] is None and ruled["voice_leading"] != free["voice_leading"]  # --no-rules lifts the rules
    with wave.open(free["wav"]) as audio:  # FluidSynth's audio of the whole harmonisation
        assert audio.getnframes() / audio.getframerate() >= pretty_midi.PrettyMIDI(free["midi"]).get_end_time()
