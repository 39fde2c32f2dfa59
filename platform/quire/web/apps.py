from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "quire.web"
    label = "web"
    verbose_name = "Quire web page"
