"""Quire: the Django project (settings, URLs) and its apps (documents, jobs, registry, api)."""
