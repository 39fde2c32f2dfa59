"""ModelVersion: the platform's record of one detector or recognizer artifact.

`ml/` owns the artifact format and its loading; this record says which artifact is in which state.
The database enforces at most one production version per kind (a partial unique index).
Promotion, roll-back and the start of a retraining live in `quire.registry.services`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        DETECTOR = "detector"
        RECOGNIZER = "recognizer"

    class State(models.TextChoices):
        CANDIDATE = "candidate"
        PRODUCTION = "production"
        ARCHIVED = "archived"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CANDIDATE)
    metrics = models.JSONField(default=dict, blank=True, help_text="CER/WER per source, parameters, speed.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    artifact = models.FileField(max_length=255, upload_to="models/")
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the artifact file (hex).")
    training_job = models.ForeignKey("jobs.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True, help_text="Last time it became production.")

    class Meta:
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="modelversion_unique_version"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(state="production"), name="modelversion_one_production_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"quire-{self.kind}@{self.version} ({self.state})"

    @property
    def name(self) -> str:
        """The name jobs record in `models_used`, e.g. `quire-recognizer@1.2026...`."""
        return f"quire-{self.kind}@{self.version}"


#: The choices of ModelVersion.state, importable by name (drf-spectacular's ENUM_NAME_OVERRIDES).
MODEL_STATES = ModelVersion.State.choices
