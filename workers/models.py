"""Model artifacts between the registry (ModelVersion rows, files in storage) and the pipeline.

    register_artifact(path, kind, ...)   upload an artifact file, create its ModelVersion
    register_shipped_models()            the artifacts of ml/artifacts/, once (idempotent)
    resolve()                            which artifact each kind uses now (one query)
    local_artifact(version)              the artifact file in the local cache (downloaded once)
    current_pipeline()                   the PagePipeline of the production versions, cached per process

Which artifact a worker uses, per kind, first match wins:
1. `QUIRE_DETECTOR_PATH` / `QUIRE_RECOGNIZER_PATH` (operators, benchmarks): that file;
2. the registry's production version: its file, downloaded from storage into `QUIRE_MODEL_CACHE`
   (default `var/models`) as `<sha256>.pt` and checked against the recorded SHA-256;
3. the shipped artifact in `ml/artifacts/` (a registry still empty).
`current_pipeline()` re-reads the production versions (one query) at the start of every job and
rebuilds the pipeline only when they changed, so a promotion takes effect without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from ml.artifact import ARTIFACTS_DIR, file_sha256
from quire.documents.storage import get_bytes, put_bytes
from quire.registry.models import ModelVersion

log = logging.getLogger(__name__)

KINDS = (ModelVersion.Kind.DETECTOR, ModelVersion.Kind.RECOGNIZER)
SHIPPED = {kind: ARTIFACTS_DIR / f"{kind}.pt" for kind in KINDS}
ENV_OVERRIDE = {ModelVersion.Kind.DETECTOR: "QUIRE_DETECTOR_PATH", ModelVersion.Kind.RECOGNIZER: "QUIRE_RECOGNIZER_PATH"}


def cache_dir() -> Path:
    """Folder of downloaded artifacts (`QUIRE_MODEL_CACHE`, default `<repo>/var/models`)."""
    return Path(os.environ.get("QUIRE_MODEL_CACHE") or Path(settings.BASE_DIR) / "var" / "models")


def read_card(path: str | Path) -> tuple[str, str, dict]:
    """(kind, version, card) of an artifact file, without building its model.

    Reads both the `quire-artifact/1` format (recognizer) and `quire-detector/1` (detector).
    Raises FileNotFoundError, or ValueError when the file is not a Quire artifact.
    """
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for a corrupt file
        raise ValueError(f"{path}: not a readable model artifact ({exc})") from exc
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt == "quire-detector/1":
        kind = ModelVersion.Kind.DETECTOR
    elif fmt == "quire-artifact/1" and data.get("kind") in KINDS:
        kind = data["kind"]
    else:
        raise ValueError(f"{path}: not a Quire model artifact (format {fmt!r})")
    return kind, str(data.get("version") or "0"), dict(data.get("card") or {})


def card_metrics(kind: str, card: dict) -> dict:
    """Registry metrics from a model card: dev figures per source, their mean, parameters, speed."""
    metrics: dict = {}
    for key in ("parameters", "params"):
        if key in card:
            metrics["parameters"] = card[key]
    dev = card.get("dev")
    if isinstance(dev, dict):
        metrics["dev"] = dev
    for key in ("dev_mean_cer", "heldout_cer", "heldout_wer", "lines_per_s", "training_seconds", "training_steps"):
        if key in card:
            metrics[key] = card[key]
    if kind == ModelVersion.Kind.DETECTOR and isinstance(dev, dict) and "macro_f1" in dev:
        metrics["dev_macro_f1"] = dev["macro_f1"]
    metrics["source"] = "model card"
    return metrics


def artifact_key(kind: str, version: str, sha256: str) -> str:
    """Storage key of an artifact: `models/<kind>/<version>-<sha256[:16]>.pt` (content-addressed)."""
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in version)
    return f"models/{kind}/{safe}-{sha256[:16]}.pt"


def register_artifact(path: str | Path, kind: str | None = None, *, state: str | None = None,
                      metrics: dict | None = None, parent: ModelVersion | None = None,
                      training_job=None, created_by=None) -> tuple[ModelVersion, bool]:
    """Upload the artifact at `path` to storage and record it; returns (version, created).

    Idempotent: an artifact whose kind and version are already recorded is not uploaded again
    (returns the existing row, created False). `state` None means production when the kind has no
    production version yet, else candidate. `metrics` default to those of the model card.
    Raises ValueError for a file that is not an artifact (of `kind`), StorageUnavailable.
    """
    found_kind, version, card = read_card(path)
    if kind is not None and found_kind != kind:
        raise ValueError(f"{path} holds a {found_kind} model, expected a {kind}")
    existing = ModelVersion.objects.filter(kind=found_kind, version=version).first()
    if existing is not None:
        return existing, False
    sha = file_sha256(path)
    key = put_bytes(artifact_key(found_kind, version, sha), Path(path).read_bytes(), overwrite=False)
    from django.utils import timezone

    for _ in range(2):
        with transaction.atomic():
            has_production = ModelVersion.objects.filter(kind=found_kind, state=ModelVersion.State.PRODUCTION).exists()
            chosen = state or (ModelVersion.State.CANDIDATE if has_production else ModelVersion.State.PRODUCTION)
            try:
                with transaction.atomic():
                    mv = ModelVersion.objects.create(
                        kind=found_kind, version=version, state=chosen, artifact=key, sha256=sha,
                        metrics=metrics if metrics is not None else card_metrics(found_kind, card),
                        parent=parent, training_job=training_job, created_by=created_by,
                        promoted_at=timezone.now() if chosen == ModelVersion.State.PRODUCTION else None)
                return mv, True
            except IntegrityError:
                # a concurrent registration took the version, or the production slot: look again
                existing = ModelVersion.objects.filter(kind=found_kind, version=version).first()
                if existing is not None:
                    return existing, False
                if state is not None:
                    raise
    raise IntegrityError(f"could not register {found_kind} {version}")


def register_shipped_models(artifacts_dir: Path = ARTIFACTS_DIR) -> list[tuple[ModelVersion, bool]]:
    """Register `detector.pt` and `recognizer.pt` of `artifacts_dir` (those present; idempotent).

    Each becomes production when its kind has none. Returns [(version, created)] per file found.
    """
    out = []
    for kind in KINDS:
        path = Path(artifacts_dir) / f"{kind}.pt"
        if not path.exists():
            log.info("no shipped %s artifact at %s; not registered", kind, path)
            continue
        out.append(register_artifact(path, kind))
    return out


@dataclass(frozen=True)
class Resolved:
    """Where one kind's artifact comes from: `path` None = the registry row `version_id`."""

    kind: str
    origin: str  # "env", "registry" or "shipped"
    path: str | None = None
    version_id: int | None = None
    sha256: str = ""
    artifact: str = ""

    @property
    def key(self) -> tuple:
        return (self.origin, self.path, self.version_id, self.sha256)


def resolve() -> dict[str, Resolved]:
    """The artifact of each kind to use now (see the module docstring); one database query.

    A database that cannot be read (embedded mode before `migrate`) counts as an empty registry.
    """
    production: dict[str, dict] = {}
    try:
        for row in ModelVersion.objects.filter(state=ModelVersion.State.PRODUCTION).values(
                "id", "kind", "sha256", "artifact"):
            production[row["kind"]] = row
    except DatabaseError as exc:
        log.warning("model registry unreadable (%s); using shipped artifacts", exc)
    out = {}
    for kind in KINDS:
        if env := os.environ.get(ENV_OVERRIDE[kind]):
            out[kind] = Resolved(kind, "env", path=env)
        elif row := production.get(kind):
            out[kind] = Resolved(kind, "registry", version_id=row["id"], sha256=row["sha256"], artifact=row["artifact"])
        else:
            out[kind] = Resolved(kind, "shipped", path=str(SHIPPED[kind]))
    return out


_DOWNLOAD_LOCK = threading.Lock()


def local_artifact(resolved: Resolved) -> Path:
    """A local file of the resolved artifact; registry artifacts are downloaded once per SHA-256.

    Raises StorageUnavailable (storage unreachable or object missing) and ValueError when the
    downloaded bytes do not match the recorded SHA-256.
    """
    if resolved.path is not None:
        return Path(resolved.path)
    name = resolved.sha256 or f"version-{resolved.version_id}"
    target = cache_dir() / f"{name}.pt"
    with _DOWNLOAD_LOCK:
        if target.exists() and (not resolved.sha256 or file_sha256(target) == resolved.sha256):
            return target
        data = get_bytes(resolved.artifact)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        if resolved.sha256 and file_sha256(tmp) != resolved.sha256:
            tmp.unlink(missing_ok=True)
            raise ValueError(f"artifact {resolved.artifact} does not match its recorded SHA-256")
        tmp.replace(target)
        log.info("downloaded %s into %s", resolved.artifact, target)
    return target


def version_path(version: ModelVersion) -> Path:
    """Local file of a ModelVersion (downloaded into the cache when needed)."""
    return local_artifact(Resolved(version.kind, "registry", version_id=version.pk, sha256=version.sha256,
                                   artifact=version.artifact.name))


_PIPELINE = None
_PIPELINE_KEY = None
_PIPELINE_LOCK = threading.Lock()


def current_pipeline():
    """The page pipeline of the models to use now, cached per process by their identity.

    Checks the production versions (one query) on every call; loads the models again only when
    a version changed. Raises StorageUnavailable when a new artifact cannot be downloaded.
    """
    global _PIPELINE, _PIPELINE_KEY
    chosen = resolve()
    key = tuple(chosen[kind].key for kind in KINDS)
    with _PIPELINE_LOCK:
        if _PIPELINE is None or key != _PIPELINE_KEY:
            from ml.pipeline import PagePipeline

            paths = {kind: local_artifact(chosen[kind]) for kind in KINDS}
            # one torch thread per worker process by default: with two, its OpenMP threads spin
            # after each forward pass while this process decodes with the (Python) LM, and two
            # workers on two cores read a line 28x slower (0.70 s against 0.025 s, measured)
            torch.set_num_threads(settings.QUIRE_TORCH_THREADS)
            _PIPELINE = PagePipeline.load(detector_path=paths[ModelVersion.Kind.DETECTOR],
                                          recognizer_path=paths[ModelVersion.Kind.RECOGNIZER],
                                          device=settings.QUIRE_DEVICE, decoding=settings.QUIRE_DECODING,
                                          printed_lines=settings.QUIRE_PRINTED_LINES,
                                          band_cut=settings.QUIRE_LINE_CUTS == "both",
                                          page_slant=settings.QUIRE_PAGE_SLANT)
            _PIPELINE_KEY = key
            log.info("pipeline loaded: %s (from %s)", _PIPELINE.models,
                     {kind: chosen[kind].origin for kind in KINDS})
        return _PIPELINE


def read_card_config(path: str | Path) -> dict:
    """The model configuration stored in an artifact (e.g. the recognizer's input `height`)."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    return dict(data.get("config") or {})
