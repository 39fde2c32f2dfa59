"""Transcription (and training) jobs: the state machine that the workers drive."""
