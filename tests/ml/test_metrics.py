"""CER/WER against hand-computed cases."""
import unicodedata

import pytest

from ml.metrics import ErrorRate, cer, normalize_text, wer


def test_identical_texts_have_no_error():
    assert cer("Dear Sir,", "Dear Sir,") == 0.0
    assert wer("Dear Sir,", "Dear Sir,") == 0.0


def test_one_substitution_in_ten_characters():
    assert cer("abcdefghij", "abcdefghiX") == pytest.approx(0.1)


def test_insertion_and_deletion_count_as_edits():
    assert cer("kitten", "sitting") == pytest.approx(3 / 6)  # k→s, e→i, +g
    assert wer("the cat sat", "the sat") == pytest.approx(1 / 3)


def test_empty_reference_and_empty_prediction():
    assert cer("", "") == 0.0
    assert cer("", "abc") == 1.0
    assert cer("abc", "") == 1.0
    assert wer("two words", "") == 1.0


def test_combining_accents_are_compared_after_nfc():
    decomposed = unicodedata.normalize("NFD", "été")
    assert len(decomposed) == 5
    assert cer("été", decomposed) == 0.0
    assert cer("été", "ete") == pytest.approx(2 / 3)


def test_whitespace_is_collapsed():
    assert normalize_text("  a \t b\n c ") == "a b c"
    assert cer("a b c", "a  b   c") == 0.0


def test_corpus_rate_is_total_edits_over_total_reference_characters():
    acc = ErrorRate()
    acc.update("abcd", "abcd")  # 0 / 4
    acc.update("ab", "xy")  # 2 / 2
    assert acc.cer == pytest.approx(2 / 6)  # not the mean of per-line rates (0.5)
    assert acc.lines == 2
