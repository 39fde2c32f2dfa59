from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "quire.api"
    label = "api"
