"""Admin for model versions: metrics side by side, promote (with or without override), roll back,
and start a retraining of the recognizer from the ground-truth lines (staff only, like the API)."""
from django.contrib import admin, messages

from . import services
from .models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "version", "state", "heldout_cer", "baseline_cer", "parent", "training_job",
                    "created_by", "created_at", "promoted_at")
    list_select_related = ("created_by", "parent", "training_job")
    list_filter = ("kind", "state")
    search_fields = ("version",)
    raw_id_fields = ("parent", "created_by", "training_job")
    readonly_fields = ("state", "sha256", "artifact", "metrics", "created_at", "promoted_at")
    actions = ["promote", "promote_override", "rollback", "retrain"]

    @admin.display(description="held-out CER")
    def heldout_cer(self, obj):
        return (obj.metrics.get("heldout") or {}).get("cer")

    @admin.display(description="production's held-out CER")
    def baseline_cer(self, obj):
        return ((obj.metrics.get("baseline") or {}).get("heldout") or {}).get("cer")

    def has_change_permission(self, request, obj=None):
        return request.user.is_staff and super().has_change_permission(request, obj)

    def _one(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "select exactly one model version", messages.ERROR)
            return None
        return queryset.first()

    def _promote(self, request, queryset, override: bool):
        version = self._one(request, queryset)
        if version is None:
            return
        try:
            services.promote(version, request.user, override=override)
        except services.RegistryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{version.name} is now production")

    @admin.action(description="Promote to production (refused when worse than production)")
    def promote(self, request, queryset):
        self._promote(request, queryset, override=False)

    @admin.action(description="Promote to production even when worse (override)")
    def promote_override(self, request, queryset):
        self._promote(request, queryset, override=True)

    @admin.action(description="Roll back the production version of the selected kind")
    def rollback(self, request, queryset):
        version = self._one(request, queryset)
        if version is None:
            return
        try:
            restored = services.rollback(version.kind, request.user)
        except services.RegistryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{restored.name} is production again")

    @admin.action(description="Retrain the recognizer from ground truth (default parameters)")
    def retrain(self, request, queryset):
        try:
            job = services.start_training(ModelVersion.Kind.RECOGNIZER, request.user, {})
        except services.RegistryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"training job #{job.pk} queued; follow it under Jobs › Training jobs")
