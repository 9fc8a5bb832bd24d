"""Batch audio demos: the same as `pianocomposer demos` (pianocomposer/frontends/demos.py, settings in
pipelines/demos.toml).

    .venv/bin/python pipelines/demos.py [--config pipelines/demos.toml] [--out output/demos] [--pieces N] [--json]
"""

import sys

from pianocomposer.frontends.cli import main

if __name__ == "__main__":
    sys.argv.insert(1, "demos")
    main()
