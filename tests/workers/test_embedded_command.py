"""`manage.py transcribe`: decode, run the pipeline in-process, print text or write exports."""
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from tests.platform.factories import page_png
from tests.platform.xml_schemas import assert_valid
from tests.workers.test_transcription import ScriptedPipeline
from workers import transcription

ROOT = Path(__file__).resolve().parents[2]
HAS_MODELS = (ROOT / "ml" / "artifacts" / "recognizer.pt").exists() and (ROOT / "ml" / "artifacts" / "detector.pt").exists()


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(transcription, "_PIPELINE", ScriptedPipeline(["Kew Gardens", "3 May & <after>"]))


def test_prints_text(tmp_path, scripted):
    image = tmp_path / "letter.png"
    image.write_bytes(page_png(seed=1))
    out = io.StringIO()
    call_command("transcribe", str(image), stdout=out)
    assert out.getvalue() == "Kew Gardens\n3 May & <after>\n"


@pytest.mark.parametrize("fmt", ["page", "alto"])
def test_writes_one_valid_file_per_page(tmp_path, scripted, fmt):
    tiff = tmp_path / "two pages.tif"
    frames = [Image.open(io.BytesIO(page_png(seed=s))) for s in (2, 3)]
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    call_command("transcribe", str(tiff), "--format", fmt, "--out", str(tmp_path / "out"), stderr=io.StringIO())
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"two pages-p1.{fmt}.xml", f"two pages-p2.{fmt}.xml"]
    for path in written:
        assert_valid(path.read_bytes(), fmt)


def test_bad_file_is_reported_and_others_still_done(tmp_path, scripted):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(page_png(seed=4))
    bad.write_bytes(b"<html>nope</html>")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("transcribe", str(bad), str(good), stdout=out, stderr=err)
    assert "bad.png: unsupported file type" in err.getvalue() and "Kew Gardens" in out.getvalue()


@pytest.mark.skipif(not HAS_MODELS, reason="shipped model artifacts (ml/artifacts/*.pt) not built yet")
@pytest.mark.django_db  # the command asks the model registry for the production versions (empty: shipped ones)
def test_real_models_on_a_real_page(handwritten_page, tmp_path):
    transcription._PIPELINE = None
    call_command("transcribe", str(handwritten_page["image"]), "--format", "alto", "--out", str(tmp_path),
                 stderr=io.StringIO())
    [written] = list(tmp_path.iterdir())
    root = assert_valid(written.read_bytes(), "alto")
    assert len(root.findall(".//{http://www.loc.gov/standards/alto/ns-v4#}TextLine")) >= 5
