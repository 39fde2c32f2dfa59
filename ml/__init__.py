"""Quire's machine-learning package: pure PyTorch, no Django, no Celery.

Sub-packages: ``ml.recognizer`` (CNN-BiLSTM-CTC line recognizer), ``ml.detect`` (line detector);
modules: ``ml.metrics`` (CER/WER), ``ml.crop`` (line crops), ``ml.pipeline`` (page → lines → text).
"""
