from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "quire.documents"
    label = "documents"
