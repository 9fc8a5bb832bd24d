"""Writing files: atomic writes, scores (MusicXML), and audio (WAV through FluidSynth)."""
