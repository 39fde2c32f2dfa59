"""The recognizer's evaluation CLI (issue 3): TSV of id<TAB>text per record, CER/WER per source."""
import json
from pathlib import Path

from ml.recognizer.data import read_lines_jsonl
from ml.recognizer.evaluate import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LINES = FIXTURES / "lines.jsonl"


def test_tsv_has_one_row_per_record_and_scores_per_source(tmp_path, capsys):
    out = tmp_path / "preds.tsv"
    assert main(["--lines", str(LINES), "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    records = read_lines_jsonl(LINES)
    rows = out.read_text(encoding="utf-8").splitlines()
    assert [r.split("\t", 1)[0] for r in rows] == [r.id for r in records]
    assert all(r.count("\t") == 1 for r in rows)  # tabs inside a prediction became spaces
    assert set(res["sources"]) == {r.source for r in records if r.handwritten}
    for v in res["sources"].values():
        assert 0 <= v["cer"] <= 1 and v["lines"] > 0 and v["chars"] > 0
    assert res["lines"] == len(records) and res["lines_per_s"] > 0


def test_language_model_decoding_is_named_and_scored(tmp_path, capsys):
    assert main(["--lines", str(LINES), "--out", str(tmp_path / "p.tsv"), "--lm"]) == 0
    printed = capsys.readouterr().out
    assert "decoding beam 10 + quire-charlm@" in printed and "copiste_dun_jour_fr" in printed
