"""The command line: results, --json and one-line errors without tracebacks."""

import json

import numpy as np
import soundfile

from tests.conftest import run_cli


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
