"""Admin for model versions (promotion and retraining actions come with issue 5)."""
from django.contrib import admin

from .models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "version", "state", "created_by", "created_at")
    list_select_related = ("created_by",)
    list_filter = ("kind", "state")
    search_fields = ("version",)
    raw_id_fields = ("parent", "created_by", "training_job")
