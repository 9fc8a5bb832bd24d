"""The demos gallery: pieces, their files and index.html, checked in a real headless Chromium and without one."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.demos import SUFFIXES, demos, read_config
from tests.conftest import run_cli

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


SETTINGS = {"default": ["temperature = 1.0"], "cautious": ["temperature = 0.8", "top_p = 0.9"]}


def write_config(folder: Path, bundles: dict[str, Path], settings: int = 2, pieces: int = 2) -> Path:
    """A small demos TOML: the given bundles, the first `settings` of SETTINGS, short pieces."""
    lines = [f"pieces = {pieces}", "length = 40", "seed = 7", "[bundles]"]
    lines += [f'{name} = "{path}"' for name, path in bundles.items()]
    for name in list(SETTINGS)[:settings]:
        lines += [f"[settings.{name}]", *SETTINGS[name]]
    path = folder / "demos.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def gallery(bundle_dir, tmp_path_factory) -> Path:
    """A gallery of 2 settings x 2 pieces from the tiny bundle."""
    folder = tmp_path_factory.mktemp("gallery")
    result = demos(write_config(folder, {"tiny": bundle_dir}), folder / "demos", jobs=2, progress=False)
    assert [p.error for p in result.pieces] == [None] * 4
    return result.index


def chrome():
    """A headless Chromium driven through the system chromedriver (no downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def page_media(driver, players: int, screenshot: Path, env: str) -> tuple[list, list, list]:
    """Wait (up to ~20 s) until `players` audio players report their duration and every image has loaded; return
    the durations, each image's (complete, natural width) and the console's errors, after a screenshot of the page
    (also to the path in the environment variable `env`, if set: the README's pictures)."""
    from selenium.webdriver.support.ui import WebDriverWait

    durations: list = []
    for _ in range(100):
        durations = driver.execute_script(
            "return [...document.querySelectorAll('audio')].map(a => a.readyState >= 1 ? a.duration : 0)")
        if len(durations) == players and all(d > 0 for d in durations):
            break
        time.sleep(0.2)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    images = driver.execute_script("return [...document.images].map(i => [i.complete, i.naturalWidth])")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    driver.save_screenshot(str(screenshot))
    if os.environ.get(env):
        driver.save_screenshot(os.environ[env])
    return durations, images, errors


@pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                    reason="chromium and chromium-driver are not installed (make browser-deps installs them)")
def test_gallery_plays_and_shows_in_chromium(gallery, tmp_path):
    driver = chrome()
    try:
        driver.get(gallery.as_uri())
        durations, images, errors = page_media(driver, 4, tmp_path / "gallery.png",
                                               "PIANOCOMPOSER_GALLERY_SCREENSHOT")  # e.g. docs/gallery.png
    finally:
        driver.quit()
    assert errors == []
    assert len(durations) == 4 and all(d > 0 for d in durations), durations
    assert len(images) == 8 and all(done and width > 0 for done, width in images), images
    assert (tmp_path / "gallery.png").stat().st_size > 0


def test_every_piece_has_its_files_and_statistics(gallery):
    stems = sorted(p.stem for p in gallery.parent.glob("*.json"))
    assert stems == ["tiny-cautious-01", "tiny-cautious-02", "tiny-default-01", "tiny-default-02"]
    for stem in stems:
        assert all((gallery.parent / f"{stem}{s}").stat().st_size > 0 for s in SUFFIXES)
        info = json.loads((gallery.parent / f"{stem}.json").read_text())
        assert info["tokens"] == 40 and 0 <= info["loop_rate"] <= 1 and info["statistics"]["pitch_range"] >= 0
    assert (gallery.parent / "tiny-default-01.ogg").read_bytes()[:4] == b"OggS"
    page = gallery.read_text()
    assert page.count("<audio") == 4 and "https://" not in page and "<script" not in page


def test_rerun_reuses_finished_pieces_and_reproduces_them(bundle_dir, tmp_path):
    config = write_config(tmp_path, {"tiny": bundle_dir}, settings=1)
    out = tmp_path / "demos"
    first = demos(config, out, jobs=1, progress=False)
    assert [p.status for p in first.pieces] == ["new", "new"]
    midi = (out / "tiny-default-02.mid").read_bytes()
    (out / "tiny-default-02.ogg").unlink()
    again = demos(config, out, jobs=1, progress=False)
    assert [p.status for p in again.pieces] == ["reused", "new"]
    assert (out / "tiny-default-02.mid").read_bytes() == midi  # a fixed seed per piece
    longer = demos(config, out, length=41, jobs=1, progress=False)  # another recipe: nothing is reused
    assert [p.status for p in longer.pieces] == ["new", "new"]


def test_broken_bundle_fails_on_its_cards_and_the_rest_complete(bundle_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    config = write_config(tmp_path, {"tiny": bundle_dir, "broken": broken, "absent": tmp_path / "absent"},
                          settings=1)
    run = run_cli("demos", "--config", config, "--out", tmp_path / "demos", "--pieces", 1, "--jobs", 1, "--json")
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert [(p["stem"], p["status"]) for p in result["pieces"]] == [("tiny-default-01", "new"),
                                                                   ("broken-default-01", "failed")]
    assert "model.keras" in result["pieces"][1]["error"] and "\n" not in result["pieces"][1]["error"]
    assert Path(result["pieces"][0]["files"]["ogg"]).is_file()
    assert result["missing_bundles"] == {"absent": str(tmp_path / "absent")}
    assert (result["new"], result["reused"], result["failed"]) == (1, 0, 1)
    page = Path(result["index"]).read_text()
    assert "broken-default-01" in page and "failed: " in page and "bundle <b>absent</b> skipped" in page


@pytest.mark.parametrize(("text", "message"), [
    ("pieces = 2\n[bundles]\n", "[bundles] must be a table"),
    ("[bundles]\na = 'x'\n[settings.s]\ntemperature = 'hot'\n", "settings.s.temperature has the wrong type"),
    ("[bundles]\na = 'x'\n[settings.s]\ntop_p = 2.0\n", "settings.s: --top-p must be in (0, 1]"),
    ("[bundles]\na = 'x'\n[settings.s]\nwarmth = 1\n", "settings.s.warmth: unknown"),
    ("[bundles]\n'a b' = 'x'\n[settings.s]\n", "bundles.a b: use letters"),
    ("pieces = [\n", "not valid TOML"),
])
def test_config_errors_name_the_file_and_reason(tmp_path, text, message):
    path = tmp_path / "demos.toml"
    path.write_text(text)
    with pytest.raises(PianoComposerError, match=f"^{re.escape(str(path))}: ") as info:
        read_config(path)
    assert message in str(info.value)


def test_missing_config_is_one_line(tmp_path):
    run = run_cli("demos", "--config", tmp_path / "nope.toml", "--out", tmp_path)
    assert run.returncode == 1 and run.stderr.strip().startswith("error: ") and len(run.stderr.splitlines()) == 1


def test_shipped_config_lists_the_default_models():
    config = read_config(Path(__file__).resolve().parent.parent / "pipelines" / "demos.toml")
    assert config.bundles == {"default": Path("weights/default"), "timed": Path("weights/timed"),
                              "abc": Path("weights/abc")}
    assert set(config.settings) == {"default", "cautious", "adventurous", "greedy"} and config.settings["greedy"].greedy


def test_abc_tunes_show_their_text_on_their_cards(tmp_path):
    from pianocomposer.config import shipped_bundle

    result = demos(write_config(tmp_path, {"abc": shipped_bundle("abc")}, settings=1, pieces=2), tmp_path / "out",
                   length=2500, jobs=1, progress=False)
    page = result.index.read_text()
    for piece in result.pieces:
        text = (tmp_path / "out" / f"{piece.stem}.abc").read_text()
        assert text.startswith("X:1\n") and "\nK:" in text
        assert html.escape(text) in page  # a valid tune's card and a failed one's alike
        assert (f"href='{piece.stem}.abc'" in page) == (piece.error is None)
    assert sum(p.error is None for p in result.pieces) >= 1 and page.count("<pre class=text>") == 2
