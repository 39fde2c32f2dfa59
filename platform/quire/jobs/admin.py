"""Admin for jobs: read-mostly views of state, progress, timings and errors."""
from django.contrib import admin

from .models import TrainingJob, TranscriptionJob

_STATE_FIELDS = ("state", "progress", "attempts", "created_at", "started_at", "finished_at",
                 "error_code", "error_message")


@admin.register(TranscriptionJob)
class TranscriptionJobAdmin(admin.ModelAdmin):
    list_display = ("id", "page", "state", "progress", "attempts", "created_at", "finished_at", "error_code")
    list_select_related = ("page__document",)
    list_filter = ("state", "error_code")
    raw_id_fields = ("page",)
    readonly_fields = _STATE_FIELDS + ("models_used", "timings", "result")


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "state", "progress", "created_by", "created_at", "finished_at")
    list_select_related = ("created_by",)
    list_filter = ("kind", "state")
    readonly_fields = _STATE_FIELDS + ("metrics",)
