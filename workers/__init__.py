"""Celery app and tasks: the join between the platform (`quire`) and the models (`ml`)."""
