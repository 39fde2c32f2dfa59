from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "quire.registry"
    label = "registry"
