"""Admin for jobs: read-mostly views of state, progress, timings and errors; training jobs can be
canceled (a running one stops at its next step, as through the API)."""
from django.contrib import admin, messages

from .models import InvalidTransition, JobState, TrainingJob, TranscriptionJob

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
    actions = ["cancel"]

    @admin.action(description="Cancel the selected training jobs (queued or running)")
    def cancel(self, request, queryset):
        canceled, refused = [], []
        for job in queryset.order_by("pk"):
            try:
                job.transition(JobState.CANCELED)
            except InvalidTransition as exc:
                refused.append(f"#{job.pk} is {exc.current}")
                continue
            canceled.append(f"#{job.pk}")
        if canceled:
            self.message_user(request, f"canceled training job(s) {', '.join(canceled)}")
        if refused:
            self.message_user(request, f"not canceled (only queued or running jobs can be): {'; '.join(refused)}",
                              messages.ERROR)
