from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "quire.jobs"
    label = "jobs"
