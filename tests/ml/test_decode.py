"""Greedy and beam CTC decoders."""
import numpy as np
import pytest

from ml.recognizer.decode import align_confidences, beam_decode, greedy_decode


def _peaked(path: list[int], num_classes: int = 5, peak: float = 0.97) -> np.ndarray:
    probs = np.full((len(path), num_classes), (1 - peak) / (num_classes - 1))
    probs[np.arange(len(path)), path] = peak
    return np.log(probs)


def test_greedy_merges_repeats_and_drops_blanks():
    d = greedy_decode(_peaked([0, 1, 1, 0, 1, 2, 2, 0, 3]))
    assert d.labels == [1, 1, 2, 3]
    assert len(d.char_confidences) == 4
    assert all(c == pytest.approx(0.97) for c in d.char_confidences)
    assert d.confidence == pytest.approx(0.97)


def test_greedy_and_beam_agree_on_a_peaked_posterior():
    lp = _peaked([0, 3, 3, 0, 0, 2, 0, 2, 4, 4, 0, 1])
    g, b = greedy_decode(lp), beam_decode(lp, beam_width=8)
    assert g.labels == b.labels == [3, 2, 2, 4, 1]
    assert b.char_confidences == pytest.approx(g.char_confidences)


def test_beam_finds_the_label_the_best_path_misses():
    # Frames: P(blank)=0.4, P(a)=0.3, P(b)=0.3 twice. Best path "blank blank" → "" (0.16),
    # but P("a") = 0.3*0.3 + 0.3*0.4*2 = 0.33 > P("") = 0.16.
    lp = np.log(np.array([[0.4, 0.3, 0.3], [0.4, 0.3, 0.3]]))
    assert greedy_decode(lp).labels == []
    assert beam_decode(lp, beam_width=5).labels in ([1], [2])


def test_beam_is_not_worse_than_greedy_on_a_fixture():
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(6) * 0.5, size=40))

    def sequence_log_prob(labels):  # CTC forward algorithm, independent of both decoders
        ext = [0]
        for c in labels:
            ext += [c, 0]
        alpha = np.full(len(ext), -np.inf)
        alpha[0] = lp[0, ext[0]]
        if len(ext) > 1:
            alpha[1] = lp[0, ext[1]]
        for t in range(1, len(lp)):
            new = np.full(len(ext), -np.inf)
            for s in range(len(ext)):
                terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
                if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
                    terms.append(alpha[s - 2])
                new[s] = np.logaddexp.reduce(terms) + lp[t, ext[s]]
            alpha = new
        return np.logaddexp(alpha[-1], alpha[-2]) if len(ext) > 1 else alpha[-1]

    g, b = greedy_decode(lp), beam_decode(lp, beam_width=16, prune=1e-4)
    assert sequence_log_prob(b.labels) >= sequence_log_prob(g.labels) - 1e-9


def test_alignment_confidences_follow_the_frames():
    lp = _peaked([0, 1, 0, 2, 2], peak=0.9)
    assert align_confidences(lp, [1, 2]) == pytest.approx([0.9, 0.9])
    assert align_confidences(lp, []) == []


def test_empty_line_confidence_is_the_blank_probability():
    d = greedy_decode(_peaked([0, 0, 0], peak=0.8))
    assert d.labels == [] and d.confidence == pytest.approx(0.8)
