"""`python -m pianocomposer` runs the command line."""

from pianocomposer.cli import main

main()
