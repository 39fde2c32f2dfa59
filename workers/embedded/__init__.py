"""Embedded mode: `manage.py transcribe FILE...` runs the pipeline in-process, no broker."""
