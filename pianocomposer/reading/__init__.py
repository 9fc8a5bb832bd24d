"""Reading music files: MIDI, MusicXML and abc books into pieces, folders into token files (stage 1, `extract`)."""
