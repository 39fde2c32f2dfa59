from django.apps import AppConfig


class EmbeddedConfig(AppConfig):
    name = "workers.embedded"
    label = "embedded"
