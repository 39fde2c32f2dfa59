"""`python manage.py register_shipped_models`: record ml/artifacts/{detector,recognizer}.pt in the
model registry (uploaded to storage; production when the kind has none). Idempotent: run it at
every start-up; a missing artifact is reported and skipped."""

from django.core.management.base import BaseCommand

from workers.models import SHIPPED, register_shipped_models


class Command(BaseCommand):
    help = "Register the shipped model artifacts in the model registry (idempotent)."

    def handle(self, *args, **options):
        done = register_shipped_models()
        for version, created in done:
            self.stdout.write(f"{version.name}: {'registered as ' + version.state if created else 'already registered'}"
                              f" ({version.state})")
        found = {version.kind for version, _ in done}
        for kind, path in SHIPPED.items():
            if kind not in found:
                self.stdout.write(f"{kind}: no shipped artifact at {path}; skipped")
