"""Imported ground-truth text keeps one line per line, whatever the XML holds."""
import unicodedata

from quire.registry.groundtruth import _one_line


def test_control_characters_and_newlines_become_single_spaces():
    assert _one_line("Dear\nSir,\t\tyour\x00note ") == "Dear Sir, your note"


def test_text_is_nfc():
    assert _one_line(unicodedata.normalize("NFD", "été")) == "été"
