"""Model artifacts: one file holding weights, configuration, codec and model card.

Format ``quire-artifact/1`` — a ``torch.save`` dict::

    {"format": "quire-artifact/1", "kind": "recognizer" | "detector", "version": str,
     "config": dict, "state_dict": {name: tensor (float16 for floating weights)},
     "codec": dict | None, "card": dict}

Floating-point weights are stored in float16 (halving the file; the recognizer's dev CER is
unchanged by the round trip, checked when the artifact is written) and restored to float32 on load.
The card is also written beside the file as Markdown by :func:`write_card_markdown`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import subprocess
from pathlib import Path

import torch

FORMAT = "quire-artifact/1"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class ArtifactError(Exception):
    """Raised when a file is not a Quire artifact of the expected kind."""


def code_commit() -> str:
    """The git commit of the code tree, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def save_artifact(path: str | Path, *, kind: str, version: str, config: dict,
                  state_dict: dict, card: dict, codec: dict | None = None) -> Path:
    """Write an artifact with float16 floating weights; returns the path."""
    sd = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
          for k, v in state_dict.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, "kind": kind, "version": version, "config": config,
                "state_dict": sd, "codec": codec, "card": card}, tmp)
    tmp.replace(path)
    return path


def load_artifact(path: str | Path, kind: str) -> dict:
    """Read an artifact written by :func:`save_artifact`, weights back in float32.

    Raises:
        FileNotFoundError: no file at ``path``.
        ArtifactError: the file is not a ``quire-artifact/1`` of ``kind``.
    """
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for a corrupt file
        raise ArtifactError(f"{path}: not a readable model artifact ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} file")
    if data.get("kind") != kind:
        raise ArtifactError(f"{path}: holds a {data.get('kind')} model, expected a {kind}")
    data["state_dict"] = {k: (v.float() if v.is_floating_point() else v)
                          for k, v in data["state_dict"].items()}
    return data


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the registry records it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_card_markdown(path: str | Path, card: dict, title: str) -> Path:
    """Write a model card dict as Markdown: scalars as a table, nested dicts as sub-tables, lists as
    bullet lists, and text of several lines (Markdown prose, e.g. a ``lineage``) as a section of its own."""
    lines = [f"# {title}", ""]
    scalars = {k: v for k, v in card.items() if not isinstance(v, (dict, list)) and not _is_prose(v)}
    lines += ["| field | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in scalars.items()]
    for k, v in card.items():
        if isinstance(v, dict):
            lines += ["", f"## {k}", ""]
            rows = list(v.items())
            if rows and all(isinstance(r, dict) for _, r in rows):
                cols = sorted({c for _, r in rows for c in r})
                lines += ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
                lines += [f"| {name} | " + " | ".join(str(r.get(c, "")) for c in cols) + " |"
                          for name, r in rows]
            else:
                lines += ["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
        elif isinstance(v, list):
            lines += ["", f"## {k}", ""] + [f"- {item}" for item in v]
        elif _is_prose(v):
            lines += ["", f"## {k}", "", v.strip("\n")]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def inherited_card(card: dict | None, scalars_only: bool = False) -> dict:
    """The entries of a parent's model card that a model made from it (a fine-tuning, a weight
    average) starts its own card with: all of them (only the scalars with ``scalars_only``) except
    ``lineage``, which tells how the parent itself was made."""
    return {k: v for k, v in (card or {}).items()
            if k != "lineage" and not (scalars_only and isinstance(v, (dict, list)))}


def _is_prose(value) -> bool:
    return isinstance(value, str) and "\n" in value.strip("\n")
