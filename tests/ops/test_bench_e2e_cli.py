"""bench.e2e without the dev set (a fresh clone without ../shared): a message naming --pages, not a traceback."""
import pytest

from bench import e2e


def test_missing_pages_index_names_the_option(tmp_path):
    with pytest.raises(SystemExit) as exc:
        e2e.main(["--token", "t", "--pages", str(tmp_path / "absent.json")])
    assert "no pages index" in str(exc.value) and "--pages tests/fixtures/pages/pages.json" in str(exc.value)
