"""pianocomposer: learn music from a folder of MIDI files and compose new MIDI and audio."""

__version__ = "0.1.0"
