"""`python -m pianocomposer` runs the command line."""

from pianocomposer.frontends.cli import main

main()
