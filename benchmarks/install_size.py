"""What an install costs: the wheel built from this checkout, installed into fresh virtual environments, each extra
set timed and its site-packages measured (pip's cache as it is: warm after `make install`).

    .venv/bin/python -m benchmarks.install_size --extras "" train
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.train_speed import cpu_name

REPO = Path(__file__).resolve().parent.parent


def folder_mb(path: Path) -> float:
    """Megabytes of files under path."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def main() -> None:
    """Build the wheel, install it once per extra set, print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="+", default=["", "train"], help='extra sets ("" is the core)')
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", tmp],
                       check=True, capture_output=True)
        (wheel,) = tmp.glob("pianocomposer-*.whl")
        for extras in args.extras:
            env = tmp / f"venv-{extras or 'core'}"
            subprocess.run([sys.executable, "-m", "venv", env], check=True)
            site = Path(subprocess.run([env / "bin" / "python", "-c", "import sysconfig; "
                                        "print(sysconfig.get_path('purelib'))"], check=True, capture_output=True,
                                       text=True).stdout.strip())
            tools = folder_mb(site)  # pip and setuptools of the bare environment, not the install
            start = time.perf_counter()
            subprocess.run([env / "bin" / "pip", "install", "-q", f"{wheel}[{extras}]" if extras else str(wheel)],
                           check=True, capture_output=True)
            seconds = time.perf_counter() - start
            rows.append({"extras": extras or "(core)", "seconds": round(seconds, 1),
                         "site_packages_mb": round(folder_mb(site)), "installed_mb": round(folder_mb(site) - tools),
                         "wheel_mb": round(wheel.stat().st_size / 2**20, 1)})
    print(json.dumps({"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
                      "python": sys.version.split()[0], "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
