"""Judging music: likelihood, music statistics, voice-leading and real-or-generated tests (`evaluate`)."""
