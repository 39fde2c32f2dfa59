"""`python manage.py retrain [--steps N] [--time-budget S] [...] [--queue] [--promote]`

Fine-tunes the production recognizer on the ground-truth lines, as the staff API and the admin
do: by default in this process (progress printed), with `--queue` on the `train` queue of the
workers. The candidate is registered with its held-out and dev figures beside production's;
`--promote` then promotes it when it is not worse (`--override` even when it is).
"""

import time

from django.core.management.base import BaseCommand, CommandError

from quire.jobs.models import JobState, TrainingJob
from quire.registry import services
from quire.registry.models import ModelVersion


class Command(BaseCommand):
    help = "Fine-tune the production recognizer on the ground-truth lines and register a candidate."

    def add_arguments(self, parser):
        parser.add_argument("--kind", default="recognizer", choices=["recognizer"])
        parser.add_argument("--steps", type=int)
        parser.add_argument("--time-budget", type=float, dest="time_budget_s", help="seconds (0 = steps only)")
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--heldout-fraction", type=float)
        parser.add_argument("--eval-every", type=int)
        parser.add_argument("--synthetic-ratio", type=float)
        parser.add_argument("--mix-base", action="store_true", default=None, help="mix in base training lines")
        parser.add_argument("--base-max-lines", type=int)
        parser.add_argument("--dev-max-lines", type=int, help="dev lines scored (0 = no dev evaluation)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--queue", action="store_true", help="send the job to the train queue and follow it")
        parser.add_argument("--promote", action="store_true", help="promote the candidate unless it is worse")
        parser.add_argument("--override", action="store_true", help="with --promote: even when worse")

    def handle(self, *args, kind, queue, promote, override, **options):
        raw = {k: v for k, v in options.items() if k in services.TRAINING_PARAMS and v is not None}
        try:
            job = services.start_training(kind, None, raw, enqueue=queue)
        except services.RegistryError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"training job #{job.pk}: {job.params}")
        if queue:
            job = self._follow(job)
        else:
            from workers import training

            training.execute(job.pk)
            job.refresh_from_db()
        if job.state != JobState.SUCCEEDED:
            raise CommandError(f"training job #{job.pk} {job.state}: {job.error_code} {job.error_message}")
        candidate = ModelVersion.objects.filter(training_job=job).first()
        m = candidate.metrics
        self.stdout.write(f"candidate {candidate.name}: held-out CER {m['heldout']['cer']:.4f} "
                          f"(production {m['baseline']['version']}: {m['baseline']['heldout']['cer']:.4f})")
        if "dev" in m:
            self.stdout.write(f"dev CER {m['dev']['cer']:.4f} (production {m['baseline']['dev']['cer']:.4f})")
        if promote:
            try:
                services.promote(candidate, None, override=override)
            except services.RegistryError as exc:
                raise CommandError(exc.message) from None
            self.stdout.write(f"{candidate.name} promoted to production")

    def _follow(self, job: TrainingJob) -> TrainingJob:
        last = None
        while True:
            job.refresh_from_db()
            m = job.metrics or {}
            line = f"{job.state} {job.progress:.0%} {m.get('phase', '')} step {m.get('step', '-')}/" \
                   f"{m.get('steps', '-')} loss {m.get('loss', '-')} val CER {m.get('val_cer', '-')}"
            if line != last:
                self.stdout.write(line)
                last = line
            if job.is_final:
                return job
            time.sleep(2)
