"""The front ends, imported by nothing but the command line, the page and `__main__`: the command line,
generate, harmonize, the gallery and the page."""
