"""`pianocomposer serve` under load and under hostile requests, as a user runs it: the real command (uvicorn, the
default worker pool and queue) in a process of its own, spoken to over HTTP from 127.0.0.1.

1. `--concurrent` compose requests (default 24, `--length` 300 tokens, the default model) sent at once: every status
   code, latency p50/p95/max, and the memory of the server and its worker processes (RSS, sampled every 0.1 s).
2. A burst past the queue (`--burst`, default 60 at once): how many are answered 200 and how many 503, and that the
   server answers afterwards.
3. Hostile requests: empty, text, truncated MIDI, 60 MB (with and without a Content-Length) uploads, `../` paths in
   several encodings; each status code and whether the server still answers.

Prints one JSON object.

    .venv/bin/python benchmarks/serve.py [--concurrent 24] [--length 300] [--burst 60]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pretty_midi

from benchmarks.train_speed import cpu_name

REPO = Path(__file__).resolve().parent.parent


def request(port: int, method: str, target: str, body=None, headers: dict | None = None, chunked: bool = False
            ) -> tuple[int, bytes, float]:
    """One request; its status, body and seconds (status 0: no answer)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused while still sending
            conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response.read(), time.perf_counter() - started
    except OSError:
        return 0, b"", time.perf_counter() - started
    finally:
        conn.close()


def tree_rss(root: int) -> tuple[int, int]:
    """RSS bytes of a process and of it with all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            rss[int(entry.name)] = int((entry / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    family, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        family.update(children)
        frontier.extend(children)
    return rss.get(root, 0), sum(rss.get(pid, 0) for pid in family)


class MemorySampler(threading.Thread):
    """The server's RSS and its process tree's, sampled until stopped; the peaks."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop, self.server_peak, self.tree_peak = pid, threading.Event(), 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            server, tree = tree_rss(self.pid)
            self.server_peak, self.tree_peak = max(self.server_peak, server), max(self.tree_peak, tree)
            time.sleep(0.1)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def melody() -> bytes:
    """A short melody as MIDI bytes."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=100)
    voice = pretty_midi.Instrument(program=0)
    voice.notes = [pretty_midi.Note(80, p, i * 0.6, (i + 1) * 0.6) for i, p in enumerate([60, 62, 64, 65, 67, 60])]
    midi.instruments.append(voice)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def compose_burst(port: int, count: int, length: int, first_seed: int) -> list[tuple[int, bytes, float]]:
    """`count` compose requests sent at once."""
    body = [json.dumps({"length": length, "seed": first_seed + i}).encode() for i in range(count)]
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda b: request(port, "POST", "/api/compose", b,
                                               {"Content-Type": "application/json"}), body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", type=int, default=24)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--burst", type=int, default=60, help="requests at once past the queue (0: skip)")
    args = parser.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "pianocomposer", "serve", "--port", str(port), "--out",
                               str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    report: dict = {"date": date.today().isoformat(), "cpu": cpu_name(), "cores": os.cpu_count(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                    "command": "benchmarks/serve.py " + " ".join(sys.argv[1:])}
    try:
        while request(port, "GET", "/api/bundles")[0] != 200:
            if server.poll() is not None:
                raise SystemExit(f"the server did not start:\n{server.stdout.read()}")
            time.sleep(0.1)
        report["start_s"] = round(time.perf_counter() - started, 2)
        status, _, seconds = request(port, "POST", "/api/compose", json.dumps({"length": args.length}).encode())
        report["first_compose"] = {"status": status, "seconds": round(seconds, 2)}
        report["idle_rss_mb"] = {k: round(v / 2**20) for k, v in zip(("server", "with_workers"), tree_rss(server.pid),
                                                                        strict=True)}

        sampler = MemorySampler(server.pid)
        sampler.start()
        t0 = time.perf_counter()
        answers = compose_burst(port, args.concurrent, args.length, 0)
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        latencies = [s for _, _, s in answers]
        codes = [status for status, _, _ in answers]
        report["concurrent"] = {
            "requests": args.concurrent, "tokens": args.length,
            "status_codes": {str(code): codes.count(code) for code in sorted(set(codes))},
            "latency_s": {"p50": round(statistics.median(latencies), 2), "p95": round(percentile(latencies, 0.95), 2),
                          "max": round(max(latencies), 2), "min": round(min(latencies), 2)},
            "wall_s": round(wall, 2), "pieces_per_s": round(codes.count(200) / wall, 2),
            "peak_rss_mb": {"server": round(sampler.server_peak / 2**20), "with_workers":
                            round(sampler.tree_peak / 2**20)}}

        if args.burst:
            answers = compose_burst(port, args.burst, 100, 1000)
            codes = [status for status, _, _ in answers]
            busy = next((json.loads(body)["error"] for status, body, _ in answers if status == 503), None)
            report["burst"] = {"requests": args.burst, "tokens": 100,
                               "status_codes": {str(code): codes.count(code) for code in sorted(set(codes))},
                               "message_503": busy, "answers_after": request(port, "GET", "/api/bundles")[0]}

        midi = melody()
        hostile = {
            "empty upload": ("POST", "/api/harmonize", b"", False),
            "text upload": ("POST", "/api/harmonize", b"This is not music at all.\n" * 20, False),
            "truncated MIDI upload": ("POST", "/api/harmonize", midi[: len(midi) // 2], False),
            "60 MB upload with Content-Length": ("POST", "/api/harmonize", bytes(60 * 2**20), False),
            "60 MB upload, chunked": ("POST", "/api/harmonize", (bytes(2**16) for _ in range(960)), True),
            "a melody (for comparison)": ("POST", "/api/harmonize", midi, False),
        }
        for target in ("/results/../../etc/passwd", "/results/%2e%2e/%2e%2e/etc/passwd",
                       "/results/..%2f..%2fetc%2fpasswd/midi", "/results/%2e%2e%2f%2e%2e%2fpyproject.toml/midi",
                       "/api/results/..%2f..%2fpyproject.toml", "/%2e%2e/%2e%2e/etc/passwd"):
            hostile[f"GET {target}"] = ("GET", target, None, False)
        report["hostile"] = {}
        for name, (method, target, body, chunked) in hostile.items():
            status, data, seconds = request(port, method, target, body,
                                            {"Content-Type": "application/octet-stream"}, chunked)
            with contextlib.suppress(ValueError):
                data = json.loads(data).get("error", "(a result)").encode()
            report["hostile"][name] = {"status": status, "answer": data.decode(errors="replace")[:120],
                                       "seconds": round(seconds, 2),
                                       "server_answers_after": request(port, "GET", "/api/bundles")[0] == 200}
        report["final_rss_mb"] = {k: round(v / 2**20) for k, v in zip(("server", "with_workers"),
                                                                      tree_rss(server.pid), strict=True)}
        report["results_on_disk_mb"] = round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1)
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
