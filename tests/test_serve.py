"""`pianocomposer serve`: a real uvicorn server on a free port with the shipped bundles, spoken to over HTTP (and by a
headless Chromium): composing, harmonising, continuing, hostile uploads and paths, the queue bound and the quota."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pretty_midi
import pytest
import uvicorn

from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.serve import RESULT_FILE, Limits, create_app, enforce_quota, find_bundles, sniff_suffix
from tests.conftest import REPO
from tests.hostile_midi import midi_file, notes_events, tempo_event, track
from tests.test_demos import CHROMEDRIVER, CHROMIUM, chrome, page_media

ABC_TUNE = "X:1\nT:Test tune\nM:4/4\nL:1/4\nK:G\nG A B c|d2 B2|c A G F|G4|]\n"
KINDS = {"midi": b"MThd", "ogg": b"OggS", "png": b"\x89PNG", "svg": b"<svg", "musicxml": b"<score-partwise"}


MELODY = (60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 67, 64, 62, 60)


def melody_bytes(pitches: tuple[int, ...] = MELODY) -> bytes:
    """A one-voice melody in quarter notes at 100 beats a minute, as MIDI bytes."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=100)
    voice = pretty_midi.Instrument(program=0)
    voice.notes = [pretty_midi.Note(80, p, i * 0.6, (i + 1) * 0.6) for i, p in enumerate(pitches)]
    midi.instruments.append(voice)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


class Client:
    """HTTP to the test server, request targets sent exactly as written (no client-side normalising of `..`)."""

    def __init__(self, port: int, out: Path, app):
        self.port, self.out, self.app = port, out, app

    def request(self, method: str, target: str, body=None, headers: dict | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def post_json(self, target: str, settings) -> tuple[int, dict]:
        status, _, body = self.request("POST", target, json.dumps(settings).encode(),
                                       {"Content-Type": "application/json"})
        return status, json.loads(body)

    def upload(self, target: str, data: bytes) -> tuple[int, dict]:
        status, _, body = self.request("POST", target, data, {"Content-Type": "application/octet-stream"})
        return status, json.loads(body)

    def alive(self) -> bool:
        return self.request("GET", "/api/bundles")[0] == 200


def start_server(out: Path, limits: Limits) -> tuple[uvicorn.Server, threading.Thread, int]:
    """A real uvicorn server in a thread, on a free port of 127.0.0.1."""
    app = create_app(out, limits=limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    return server, thread, sock.getsockname()[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Client:
    """One server for the module: one worker and one place in the queue (so a burst meets the bound), reading an
    upload for at most 2 s."""
    out = tmp_path_factory.mktemp("serve")
    server, thread, port = start_server(out, Limits(workers=1, queue=1, parse_timeout_s=2.0))
    yield Client(port, out, server.config.app)
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def composed(client) -> dict:
    """A 100-token piece of the default model."""
    status, result = client.post_json("/api/compose", {"length": 100, "seed": 3})
    assert status == 200, result
    return result


def test_page_and_script_are_served_offline_with_a_strict_policy(client):
    status, headers, page = client.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="/serve_page.js"></script>' in page
    status, headers, script = client.request("GET", "/serve_page.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    for text in (page, script):  # nothing from another site: the page works offline
        assert b"http://" not in text and b"https://" not in text and b"//cdn" not in text
    assert "default-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"


def test_bundles_lists_the_shipped_models_and_what_each_can_do(client):
    status, _, body = client.request("GET", "/api/bundles")
    bundles = {b["name"]: b for b in json.loads(body)["bundles"]}
    assert status == 200 and next(iter(bundles)) == "default" and {"default", "timed", "abc", "chorale"} <= set(bundles)
    assert bundles["chorale"]["harmonizes"] and not bundles["default"]["harmonizes"]
    assert bundles["default"]["continues"] and bundles["timed"]["continues"] and not bundles["abc"]["continues"]
    assert bundles["abc"]["metre"] and bundles["abc"]["encoding"] == "abc"


def test_find_bundles_takes_a_trained_folder_and_skips_a_broken_one(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bundle.json").write_text("{not json")
    found = find_bundles([REPO / "weights" / "timed", tmp_path])
    assert list(found) == ["timed"] and found["timed"].continues
    with pytest.raises(PianoComposerError, match="nowhere: no such folder of bundles"):
        find_bundles([tmp_path / "nowhere"])


def test_compose_answers_every_file_and_serves_it(client, composed):
    assert composed["kind"] == "compose" and composed["bundle"] == "default" and composed["tokens"] == 100
    assert composed["settings"]["seed"] == 3 and composed["error"] is None
    assert set(composed["files"]) == set(KINDS)
    for kind, magic in KINDS.items():
        status, headers, body = client.request("GET", composed["files"][kind])
        assert status == 200 and magic in body[:400], kind
        assert ("attachment" in headers["content-disposition"]) == (kind in ("midi", "musicxml")), kind
    status, _, body = client.request("GET", f"/api/results/{composed['id']}")
    assert status == 200 and json.loads(body) == composed


def test_the_same_seed_composes_the_same_piece_and_no_seed_reports_the_one_drawn(client, composed):
    status, again = client.post_json("/api/compose", {"length": 100, "seed": 3})
    assert status == 200 and again["id"] != composed["id"]
    assert client.request("GET", again["files"]["midi"])[2] == client.request("GET", composed["files"]["midi"])[2]
    status, drawn = client.post_json("/api/compose", {"bundle": "timed", "bars": 4})
    assert status == 200 and isinstance(drawn["settings"]["seed"], int) and drawn["settings"]["bars"] == 4
    piece = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", drawn["files"]["midi"])[2]))
    assert piece.instruments[0].notes


def test_an_abc_tune_in_the_key_and_metre_asked_for(client):
    status, result = client.post_json("/api/compose", {"bundle": "abc", "bars": 8, "key": "D major",
                                                       "metre": "6/8", "seed": 1})
    assert status == 200, result
    assert set(result["files"]) == {*KINDS, "abc"}
    text = client.request("GET", result["files"]["abc"])[2].decode()
    assert "\nM:6/8\n" in text and "\nK:D\n" in text


@pytest.mark.parametrize(("settings", "status", "message"), [
    ({"lenght": 100}, 400, "unknown field 'lenght'; the fields are bundle, length"),
    ({"length": "long"}, 400, 'length must be an integer (got "long")'),
    ({"length": True}, 400, "length must be an integer (got true)"),
    ({"length": 0}, 400, "length must be between 1 and 100000 (got 0)"),
    ({"length": 2001}, 400, "length must be at most 2000 tokens for bundle 'default' (got 2001)"),
    ({"bundle": "chorale", "length": 6001}, 400, "length must be at most 6000 tokens for bundle 'chorale'"),
    ({"seed": -1}, 400, "seed must be between 0 and"),
    ({"bundle": "../weights/default"}, 400, "no bundle named '../weights/default'; the bundles are default"),
    ({"temperature": 0}, 422, "temperature must be > 0"),
    ({"key": "H major"}, 422, "key 'H major': expected a tonic and a mode"),
    ({"bundle": "abc", "seconds": 10}, 422, "seconds is for MIDI encodings"),
    ({"length": 100, "bars": 4}, 422, "choose one of length (tokens), bars and seconds"),
    ([1, 2], 400, "the body must be a JSON object of settings"),
])
def test_wrong_settings_are_one_sentence(client, settings, status, message):
    answer, result = client.post_json("/api/compose", settings)
    assert (answer, list(result)) == (status, ["error"]) and message in result["error"]
    assert "\n" not in result["error"] and str(REPO) not in result["error"]


def test_settings_over_16_kb_are_refused_while_they_arrive(client):
    status, result = client.post_json("/api/compose", {"key": "C major", "pad": "x" * 17 * 1024})
    assert status == 413 and result["error"] == "the settings are larger than 16 KB"


def test_a_body_that_is_not_json_is_one_sentence(client):
    status, _, body = client.request("POST", "/api/compose", b"length=100")
    assert status == 400 and json.loads(body)["error"].startswith("the body is not JSON")


def test_harmonize_a_midi_an_abc_and_a_musicxml_melody(client):
    status, result = client.upload("/api/harmonize?seed=1&name=scale.mid", melody_bytes())
    assert status == 200, result
    assert result["kind"] == "harmonize" and result["bundle"] == "chorale" and result["name"] == "scale.mid"
    assert set(result["files"]) == set(KINDS) and result["melody_notes"] == 16 and result["left_out"] == 0
    assert b"scale (harmonised)" in client.request("GET", result["files"]["musicxml"])[2]  # titled by its name
    satb = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", result["files"]["midi"])[2]))
    assert len(satb.instruments) == 4
    assert [n.pitch for n in satb.instruments[0].notes] == list(MELODY)  # the melody is the soprano
    status, tune = client.upload("/api/harmonize?bundle=chorale", ABC_TUNE.encode())
    assert status == 200 and tune["melody_notes"] == 11, tune
    score = client.request("GET", result["files"]["musicxml"])[2]  # a four-part score: its top line is harmonised
    status, again = client.upload("/api/harmonize", score)
    assert status == 200 and again["melody_notes"] >= 16 and set(again["files"]) == set(KINDS), again


def test_continue_a_piece(client):
    status, result = client.upload("/api/continue?bundle=default&length=50&seed=2", melody_bytes())
    assert status == 200, result
    assert result["kind"] == "continue" and result["tokens"] == 50 and set(result["files"]) == {*KINDS, "continuation"}
    whole = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", result["files"]["midi"])[2]))
    alone = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", result["files"]["continuation"])[2]))
    assert alone.instruments[0].notes and whole.get_end_time() > alone.get_end_time()


def test_infill_rewrites_bars_of_a_composed_result_and_of_an_upload(client):
    status, piece = client.post_json("/api/compose", {"bundle": "timed", "bars": 6, "seed": 4})
    assert status == 200, piece
    status, result = client.upload(f"/api/infill?bundle=timed&from={piece['id']}&first=2&last=3&seed=1"
                                   "&candidates=2", b"")
    assert status == 200, result
    assert result["kind"] == "infill" and result["source"] == piece["id"] and result["bars"] == [2, 3]
    assert set(result["files"]) == set(KINDS) - {"abc"} and len(result["candidates"]) == 2
    before = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", piece["files"]["midi"])[2]))
    after = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", result["files"]["midi"])[2]))
    low, high = (after.tick_to_time(round(q * after.resolution)) for q in (4, 12))  # bars 2-3 of 4/4
    outside = [sorted((n.pitch, round(n.start, 4), round(n.end, 4), n.velocity) for t in m.instruments
                      for n in t.notes if not low <= n.start < high) for m in (before, after)]
    assert outside[0] == outside[1] and result["kept"] == len(outside[0])
    status, harmonised = client.upload("/api/harmonize?seed=1", melody_bytes())
    assert status == 200, harmonised
    status, chorale = client.upload(f"/api/infill?bundle=chorale&from={harmonised['id']}&first=2&last=3"
                                    "&keep_melody=1", b"")
    assert status == 200 and chorale["bundle"] == "chorale" and chorale["replaced"] > 0, chorale
    satb = pretty_midi.PrettyMIDI(io.BytesIO(client.request("GET", chorale["files"]["midi"])[2]))
    assert [n.pitch for n in satb.instruments[0].notes] == list(MELODY)  # the melody kept
    status, uploaded = client.upload("/api/infill?bundle=timed&first=1&name=scale.mid", melody_bytes())
    assert status == 200 and uploaded["source"] is None and uploaded["name"] == "scale.mid", uploaded


@pytest.mark.parametrize(("target", "status", "message"), [
    ("/api/infill?bundle=default&first=2", 400, "bundle 'default' cannot rewrite bars of a piece"),
    ("/api/infill?bundle=timed", 400, "first (the first bar to rewrite, from 1) is required"),
    ("/api/infill?first=3&last=2", 400, "an empty range of bars: 3-2"),
    ("/api/infill?first=2&candidates=99", 400, "candidates must be between 1 and 16 (got 99)"),
    ("/api/infill?first=2&from=../../etc", 404, "no such result"),
    ("/api/infill?first=40", 422, "bars 40-40 are outside the piece (it has 4 bars)"),
])
def test_wrong_infill_settings_are_one_sentence(client, target, status, message):
    answer, result = client.upload(target, melody_bytes())
    assert answer == status and message in result["error"], result


@pytest.mark.parametrize(("target", "message"), [
    ("/api/harmonize?bundle=default", "bundle 'default' cannot harmonise a melody"),
    ("/api/continue?bundle=abc", "bundle 'abc' cannot continue a piece"),
    ("/api/harmonize?seed=many", "seed must be an integer (got 'many')"),
    ("/api/harmonize?style=baroque", "unknown field 'style'"),
    ("/api/harmonize?figuration=5", "figuration must be between -3 and 3 (got 5)"),
])
def test_wrong_upload_settings_are_one_sentence(client, target, message):
    status, result = client.upload(target, melody_bytes())
    assert status == 400 and message in result["error"]


def single_notes_bytes(count: int) -> bytes:
    """A melody of `count` single notes, a sixteenth apart at 120 qpm (2,001 of them last 250 s: under 5 minutes)."""
    return midi_file([track(notes_events([[60 + i % 12] for i in range(count)], step=120))])


HOSTILE = {
    "empty": (b"", 400, "the file is empty"),
    "text": (b"Dear server, please compose a symphony.\n" * 10, 415, "not a MIDI, MusicXML or abc file"),
    "wav": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100), 415, "not a MIDI, MusicXML or abc file"),
    "truncated midi": (melody_bytes()[:60], 422, "the file cannot be used: cannot be played"),
    "midi without notes": (midi_file([track(tempo_event(500_000))]), 422, "the file cannot be used: it holds no notes"),
    "too many notes": (single_notes_bytes(2001), 422, "too long for a melody (at most 2000 notes and 5 minutes)"),
    "abc without music": (b"X:1\nT:nothing\n", 422, "the file cannot be used: cannot be played (no metre (M:))"),
    "broken musicxml": (b"<?xml version='1.0'?><score-partwise><part", 422,
                        "the file cannot be used: not a readable MusicXML file (unclosed token"),
    "zip that is no score": (b"PK\x03\x04" + bytes(200), 422, "the file cannot be used: not a readable MusicXML file"),
    "abc that hangs the parser": (("X:1\nT:slow\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc|" * 20000).encode(), 422,
                                  "reading it took longer than 2 s"),
    "3 MB": (bytes(3 * 2**20), 413, "the file is larger than the limit of 2 MB"),
}


def test_a_melody_of_2000_notes_is_read_and_one_more_is_too_long(tmp_path):
    from pianocomposer.frontends.serve import melody_midi

    for count in (2000, 2001):
        (tmp_path / f"{count}.mid").write_bytes(single_notes_bytes(count))
    held = pretty_midi.PrettyMIDI(io.BytesIO(melody_midi(tmp_path / "2000.mid")))
    assert sum(len(i.notes) for i in held.instruments) == 2000 and held.get_end_time() < 300
    with pytest.raises(PianoComposerError, match="too long for a melody"):
        melody_midi(tmp_path / "2001.mid")


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_answer_4xx_and_leave_nothing(client, case):
    data, status, message = HOSTILE[case]
    answer, result = client.upload("/api/harmonize", data)
    assert (answer, list(result)) == (status, ["error"]) and message in result["error"], result
    assert str(client.out) not in result["error"] and "\n" not in result["error"]
    assert client.alive()
    leftovers = [p for p in client.out.glob("*/*") if not p.name.startswith(("piece.", "continuation.", "result."))]
    assert leftovers == [] and all((p / RESULT_FILE).is_file() for p in client.out.iterdir() if p.is_dir())


def test_60_mb_upload_is_refused_while_it_arrives(client):
    sent = 0

    def chunks():  # no Content-Length: the server must count as it reads
        nonlocal sent
        for _ in range(60 * 16):
            sent += 2**16
            yield bytes(2**16)

    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=60)
    try:
        # the server may close the connection before everything is sent: its answer is there all the same
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", "/api/harmonize", body=chunks(), encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and b"larger than the limit of 2 MB" in response.read()
    finally:
        conn.close()
    assert client.alive()
    status, result = client.upload("/api/harmonize", bytes(60 * 2**20))  # with a Content-Length
    assert status == 413 and "larger than the limit" in result["error"]


def test_a_body_cut_off_midway_leaves_the_server_up_and_no_folder(client):
    before = sorted(p.name for p in client.out.iterdir())
    with socket.create_connection(("127.0.0.1", client.port)) as sock:
        sock.sendall(b"POST /api/harmonize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nMThd\0\0")
    time.sleep(0.5)
    assert client.alive()
    assert sorted(p.name for p in client.out.iterdir()) == before


@pytest.mark.parametrize("target", [
    "/results/../../etc/passwd", "/results/%2e%2e/%2e%2e/etc/passwd", "/results/..%2f..%2fetc%2fpasswd/midi",
    "/results/%2e%2e%2f%2e%2e%2fpyproject.toml/midi", "/results/{id}/..%2f..%2f..%2fpyproject.toml",
    "/results/{id}/%2e%2e%2fresult.json", "/results/{id}/../result.json", "/results/{id}/%2e%2e/{id}/midi",
    "/results/{id}%2f..%2f{id}/midi", "/results/{id}/midi%00", "/results/{id}/piece.mid", "/results/{id}/.",
    "/api/results/..%2f..%2fpyproject.toml", "/api/results/%2e%2e", "/%2e%2e/%2e%2e/etc/passwd",
    "/results/linked/midi", "/results/20000101-000000-00000000/midi", "/results/{id}/wav",
])
def test_no_path_in_a_url_reaches_the_file_system(client, composed, target):
    link = client.out / "linked"
    if not link.exists():
        link.symlink_to(client.out / composed["id"], target_is_directory=True)  # a finished result's folder
    status, _, body = client.request("GET", target.replace("{id}", composed["id"]))
    assert status == 404, (target, status)  # as docs/serve-api.md promises: no such file
    assert b"root:" not in body and b"[project]" not in body and b"MThd" not in body and b"bundle" not in body
    assert list(json.loads(body)) == ["error"]


def test_a_burst_past_the_queue_gets_503_and_the_rest_200(client):
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda seed: client.request("POST", "/api/compose", json.dumps(
            {"length": 100, "seed": seed}).encode()), range(6)))
    codes = sorted(status for status, _, _ in answers)
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    for status, headers, body in answers:
        if status == 503:
            assert headers["retry-after"] == "5" and json.loads(body)["error"].startswith("the server is busy")
    assert client.post_json("/api/compose", {"length": 100})[0] == 200


def test_a_worker_killed_midway_fails_its_request_in_one_sentence_and_the_next_one_composes(client):
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(client.post_json, "/api/compose", {"length": 1000, "seed": 9})
        server = client.app.state.server
        for _ in range(200):  # until the job is in a worker
            if server.busy and server.pool._processes:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        for pid in list(server.pool._processes):
            os.kill(pid, signal.SIGKILL)
        status, result = answer.result()
    assert (status, result) == (500, {"error": "the composing process crashed; try again"})
    assert client.post_json("/api/compose", {"length": 100})[0] == 200


def test_requests_from_other_sites_and_hosts_are_refused(client):
    status, _, body = client.request("POST", "/api/compose", b"{}", {"Origin": "http://evil.example"})
    assert status == 403 and json.loads(body)["error"] == "requests from other sites are refused"
    assert client.request("GET", "/", headers={"Host": "evil.example"})[0] == 400  # DNS rebinding
    assert client.request("GET", "/", headers={"Host": f"localhost:{client.port}"})[0] == 200


def test_quota_removes_the_oldest_finished_results_first(tmp_path):
    for n, name in enumerate(["20260101-000000-aaaaaaaa", "20260101-000001-bbbbbbbb", "20260101-000002-cccccccc",
                              "20260101-000003-dddddddd"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "piece.ogg").write_bytes(bytes(1000))
        (tmp_path / name / RESULT_FILE).write_text("{}")
        os.utime(tmp_path / name / RESULT_FILE, (1000 + n, 1000 + n))
    (tmp_path / "20260101-000004-eeeeeeee").mkdir()  # being made: no result.json yet
    (tmp_path / "20260101-000004-eeeeeeee" / "piece.mid").write_bytes(bytes(1000))
    removed = enforce_quota(tmp_path, 3100, busy={"20260101-000000-aaaaaaaa"})
    assert removed == ["20260101-000001-bbbbbbbb", "20260101-000002-cccccccc"]
    assert sorted(p.name[-8:] for p in tmp_path.iterdir()) == ["aaaaaaaa", "dddddddd", "eeeeeeee"]
    assert enforce_quota(tmp_path, 10**6) == []


@pytest.mark.parametrize(("head", "suffix"), [
    (b"MThd\0\0\0\x06", ".mid"), (b"PK\x03\x04rest", ".mxl"), (b'<?xml version="1.0"?>\n<score-partwise>', ".musicxml"),
    (b"%abc-2.1\nX: 3\nK:C\n", ".abc"), (b"RIFF....WAVE", None), (b"hello\nX:no\n", None), (b"", None)])
def test_uploads_are_known_by_their_first_bytes_not_their_names(head, suffix):
    assert sniff_suffix(head) == suffix


def test_limits_never_take_more_processes_than_cores():
    assert Limits(workers=10**4).workers == (os.cpu_count() or 1)


def test_the_command_serves_until_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "pianocomposer", "serve", "--port", "0", "--out",
                             str(tmp_path / "out"), "--weights", str(REPO / "weights" / "abc"), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        first = proc.stdout.readline()  # until the line naming the port it bound: no race with another test's
        while "http://127.0.0.1:" not in first and first:
            first = proc.stdout.readline()
        port = int(first.split("http://127.0.0.1:")[1].split("/")[0])
        client = Client(port, tmp_path / "out", None)
        for _ in range(300):
            try:
                if client.alive():
                    break
            except OSError:
                time.sleep(0.1)
        status, _, body = client.request("GET", "/api/bundles")
        assert status == 200 and [b["name"] for b in json.loads(body)["bundles"]] == ["abc"]
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "Traceback" not in first + output


@pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                    reason="chromium and chromium-driver are not installed (make browser-deps installs them)")
def test_in_chromium_compose_listen_look_and_harmonise(client, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    melody = tmp_path / "my melody.mid"
    melody.write_bytes(melody_bytes())
    driver = chrome()
    try:
        driver.get(f"http://127.0.0.1:{client.port}/")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_element(By.ID, "status").text == "Ready.")
        assert "chorale" in [o.text for o in Select(driver.find_element(By.ID, "harmony-bundle")).options]
        driver.find_element(By.ID, "length").send_keys("100")
        driver.find_element(By.ID, "seed").send_keys("5")
        driver.find_element(By.ID, "compose").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 1)
        driver.find_element(By.ID, "melody").send_keys(str(melody))
        Select(driver.find_element(By.ID, "figuration")).select_by_visible_text("florid")
        driver.find_element(By.ID, "harmonize").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 2)
        durations, images, errors = page_media(driver, 2, tmp_path / "serve.png",
                                               "PIANOCOMPOSER_SERVE_SCREENSHOT")  # e.g. docs/serve.png
        titles = [h.text for h in driver.find_elements(By.CSS_SELECTOR, ".card h2")]
        hidden_metre = not driver.find_element(By.ID, "metre").is_displayed()
        meta = driver.find_element(By.CSS_SELECTOR, ".card .meta").text
        links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, ".card .links a")]
        status = driver.find_element(By.ID, "status").text
    finally:
        driver.quit()
    assert errors == []
    assert len(durations) == 2 and all(d > 0 for d in durations), durations
    assert len(images) == 4 and all(done and width > 0 for done, width in images), images
    assert titles[0].startswith("Harmonised") and titles[1].startswith("Composed"), titles
    assert hidden_metre  # only an abc model takes a metre
    assert "model chorale" in meta and "my melody.mid" in meta and "figuration 2" in meta
    assert {"MIDI", "MusicXML", "sheet (SVG)"} <= set(links) and status.startswith("Harmonising: done")


def test_in_chromium_rewrite_bars_of_a_piece_hear_both_and_keep_one(client):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = chrome()
    try:
        driver.get(f"http://127.0.0.1:{client.port}/")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_element(By.ID, "status").text == "Ready.")
        Select(driver.find_element(By.ID, "bundle")).select_by_visible_text("timed")
        Select(driver.find_element(By.ID, "unit")).select_by_visible_text("bars")
        driver.find_element(By.ID, "length").send_keys("4")
        driver.find_element(By.ID, "seed").send_keys("6")
        driver.find_element(By.ID, "compose").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 1)
        original = driver.find_element(By.CSS_SELECTOR, ".card").get_attribute("data-id")
        form = driver.find_element(By.CSS_SELECTOR, ".card .rewrite")
        assert Select(form.find_element(By.TAG_NAME, "select")).first_selected_option.text == "timed"
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 2)
        rewritten = driver.find_elements(By.CSS_SELECTOR, ".card")[0]
        title = rewritten.find_element(By.TAG_NAME, "h2").text
        sources = [a.get_attribute("src") for a in rewritten.find_elements(By.TAG_NAME, "audio")]
        next(b for b in rewritten.find_elements(By.CSS_SELECTOR, "button.keep") if b.text == "Keep the rewrite").click()
        ids = [c.get_attribute("data-id") for c in driver.find_elements(By.CSS_SELECTOR, ".card")]
        status = driver.find_element(By.ID, "status").text
    finally:
        driver.quit()
    assert title.startswith("Rewritten") and status.startswith("Rewriting bars: done"), (title, status)
    assert len(sources) == 2 and sources[0].endswith(f"/results/{original}/ogg")  # before, then after
    assert len(ids) == 1 and ids[0] != original  # the rewrite kept, the original gone
