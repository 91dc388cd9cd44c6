"""Metrics against hand-computed and published values: Wilson, McNemar, mean score, ROUGE-L, token F1."""

from __future__ import annotations

import math

import pytest

from ptst.metrics import (
    agreement,
    asr,
    by_category,
    cohen_kappa,
    judge_agreement,
    lcs_length,
    mcnemar_exact,
    mean_score,
    paired,
    rate,
    rouge_l_f1,
    token_f1,
    wilson,
)
from ptst.records import Judgement


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # textbook values (e.g. Brown, Cai & DasGupta 2001 style tables)
        (5, 10, 0.23659, 0.76341),
        (10, 10, 0.72247, 1.0),
        (1, 64, 0.00276, 0.08334),  # these two: the score test inverted by bisection
        (81, 263, 0.25529, 0.36621),
    ],
)
def test_wilson_known_values(k, n, low, high):
    r = wilson(k, n)
    assert r.k == k and r.n == n and r.value == pytest.approx(k / n)
    assert r.low == pytest.approx(low, abs=5e-5) and r.high == pytest.approx(high, abs=5e-5)


def test_wilson_formula_by_hand():
    # 3/20 with z = 1.96: center = (0.15 + 0.09604) / 1.19208, half = 1.96 sqrt(0.006375 + 0.0024010) / 1.19208
    z = 1.96
    r = wilson(3, 20, z=z)
    denom = 1 + z * z / 20
    center = (0.15 + z * z / 40) / denom
    half = z * math.sqrt(0.15 * 0.85 / 20 + z * z / 1600) / denom
    assert r.low == pytest.approx(center - half) and r.high == pytest.approx(center + half)


def test_wilson_edges_and_errors():
    assert wilson(0, 0).value is None and str(wilson(0, 0)) == "n/a (0/0)"
    assert wilson(0, 5).low == 0.0 and wilson(5, 5).high == 1.0
    with pytest.raises(ValueError):
        wilson(6, 5)
    assert str(wilson(5, 10)) == "50.0% [23.7, 76.3] (5/10)"


def test_rate_excludes_none_from_denominator():
    r, missing = rate([True, False, None, True, None])
    assert (r.k, r.n, missing) == (2, 3, 2)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 5, 0.0625),  # 2 * (1/2)^5
        (5, 0, 0.0625),
        (0, 0, 1.0),
        (3, 3, 1.0),
        (1, 9, 2 * 11 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10 = 0.021484375
        (2, 10, 2 * (1 + 12 + 66) / 4096),  # 0.03857421875
        (10, 40, 2 * sum(math.comb(50, i) for i in range(11)) / 2**50),
    ],
)
def test_mcnemar_exact(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_paired_counts_discordant_and_excludes_unscored():
    a = {"1": True, "2": True, "3": False, "4": None, "5": True, "6": False, "x": True}
    b = {"1": False, "2": False, "3": False, "4": True, "5": True, "6": True, "y": False}
    res = paired(a, b)
    assert (res.n_pairs, res.b, res.c) == (5, 2, 1)
    assert res.excluded_unscored == 1 and res.only_in_a == 1 and res.only_in_b == 1
    assert res.p_value == pytest.approx(1.0)  # 2 * (1 + 3) / 8 = 1
    assert (res.rate_a.k, res.rate_b.k) == (3, 2)


def test_mean_score_and_asr_exclude_unscored():
    ms = mean_score([1, 5, 3, None])
    assert ms.mean == pytest.approx(3.0) and ms.n == 3 and ms.sd == pytest.approx(2.0)
    assert ms.low == pytest.approx(3 - 1.959963984540054 * 2 / math.sqrt(3))
    js = [Judgement(str(i), "rubric", "v", "x", h, s) for i, (h, s) in
          enumerate([(True, 5), (False, 1), (False, 4), (None, None)])]
    out = asr(js)
    assert out["asr"]["k"] == 1 and out["asr"]["n"] == 3 and out["unscored"] == 1 and out["n_judged"] == 4
    assert out["mean_score"]["mean"] == pytest.approx(10 / 3)


def test_by_category():
    js = [Judgement(str(i), "k", "v", "x", h) for i, h in enumerate([True, False, True, True])]
    cats = {"0": "malware", "1": "malware", "2": "drug"}
    out = by_category(js, cats)
    assert out["malware"]["asr"]["k"] == 1 and out["malware"]["asr"]["n"] == 2
    assert out["drug"]["asr"]["value"] == 1.0 and out["(none)"]["asr"]["n"] == 1


def test_token_f1_squad_semantics():
    assert token_f1("The cat sat.", "a cat sat") == 1.0  # articles and punctuation dropped
    # pred {take, two, pills}, ref {take, one, pill, daily}: 1 common -> P=1/3, R=1/4 -> F1 = 2/7
    assert token_f1("take two pills", "take one pill daily") == pytest.approx(2 / 7)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_rouge_l_by_hand():
    assert lcs_length(["a", "b", "c", "d", "e"], ["a", "c", "e", "f"]) == 3
    # pred 5 tokens, ref 4 tokens, LCS 3 -> P = 3/5, R = 3/4 -> F = 2/3
    assert rouge_l_f1("A b, c d e!", "a c e f") == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert rouge_l_f1("same words here", "same words here") == 1.0
    assert rouge_l_f1("nothing", "else") == 0.0 and rouge_l_f1("", "x") == 0.0


def test_cohen_kappa_and_its_asymptotic_se_by_hand():
    # rows = rater A (pos, neg), columns = rater B: [[20, 5], [10, 15]], n = 50. p_o = 0.7, margins A (.5, .5),
    # B (.6, .4): p_e = 0.5, kappa = 0.4. Fleiss-Cohen-Everitt: diagonal .4*(1-1.1*.6)^2 + .3*(1-.9*.6)^2 = .10972;
    # off-diagonal .36*(.1*(.6+.5)^2 + .2*(.4+.5)^2) = .10188; minus (.4 - .5*.6)^2 = .01 -> var = .2016 / 12.5.
    k = cohen_kappa(20, 5, 10, 15)
    assert k.value == pytest.approx(0.4)
    assert k.se == pytest.approx(math.sqrt(0.2016 / 12.5))
    assert (k.low, k.high) == pytest.approx((0.4 - 1.959964 * k.se, 0.4 + 1.959964 * k.se))
    assert str(k) == "0.400 [0.151, 0.649]"


def test_cohen_kappa_edges():
    assert cohen_kappa(10, 0, 0, 10).value == 1.0 and cohen_kappa(10, 0, 0, 10).se == 0.0
    assert cohen_kappa(0, 10, 10, 0).value == pytest.approx(-1.0)
    assert cohen_kappa(10, 0, 0, 0).value is None  # both raters say "positive" to everything: p_e = 1
    assert cohen_kappa(0, 0, 0, 0).value is None and str(cohen_kappa(0, 0, 0, 0)) == "n/a"
    assert cohen_kappa(5, 5, 5, 5).value == pytest.approx(0.0)  # chance agreement
    with pytest.raises(ValueError):
        cohen_kappa(-1, 0, 0, 0)


def test_agreement_counts_rates_and_error_rates():
    pairs = [(True, True)] * 3 + [(True, False)] * 2 + [(False, True)] + [(False, False)] * 4
    a = agreement(pairs)
    assert (a.tp, a.fp, a.fn, a.tn, a.n) == (3, 2, 1, 4, 10)
    assert a.agreement.k == 7 and a.rate_a.k == 5 and a.rate_b.k == 4
    assert (a.fpr.k, a.fpr.n, a.fnr.k, a.fnr.n) == (2, 6, 1, 4)
    assert a.kappa.value == pytest.approx((0.7 - (0.5 * 0.4 + 0.5 * 0.6)) / (1 - 0.5))
    flipped = agreement([(x, not y) if i == 0 else (x, y) for i, (x, y) in enumerate(pairs)])
    assert flipped.agreement.k == 6 and flipped.kappa.value < a.kappa.value
    assert a.to_dict()["n"] == 10 and agreement([]).kappa.value is None


def test_paired_mean_by_hand():
    from ptst.metrics import paired_mean

    a = {"x": 1.0, "y": 0.5, "z": 0.7, "only-a": 9.0}
    b = {"x": 0.5, "y": 0.5, "z": 0.2, "only-b": -9.0}
    pm = paired_mean(a, b)
    # differences 0.5, 0, 0.5 on the 3 shared ids: mean 1/3, sd sqrt(1/12), z = 2.0, p = erfc(2 / sqrt 2)
    assert pm.n_pairs == 3 and pm.mean_a == pytest.approx(2.2 / 3) and pm.mean_b == pytest.approx(1.2 / 3)
    assert pm.diff.mean == pytest.approx(1 / 3) and pm.diff.sd == pytest.approx((1 / 12) ** 0.5)
    assert pm.p_value == pytest.approx(0.0455003, abs=1e-6)
    flipped = paired_mean(b, a)
    assert flipped.diff.mean == pytest.approx(-1 / 3) and flipped.p_value == pytest.approx(pm.p_value)
    assert paired_mean({"x": 1.0}, {"x": 0.0}).p_value is None  # one pair: no test
    assert paired_mean({"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 0.0}).p_value == 0.0  # constant, non-zero shift


def test_judge_agreement_pairs_only_ids_both_scored():
    def j(i, harmful, judge):
        return Judgement(str(i), judge, "v", "x", harmful, None, "")

    a = [j(0, True, "a"), j(1, True, "a"), j(2, False, "a"), j(3, None, "a")]
    b = [j(0, True, "b"), j(1, False, "b"), j(2, False, "b"), j(3, True, "b"), j(4, True, "b")]
    got = judge_agreement({"a": a, "b": b, "c": b})
    assert set(got) == {"a|b", "a|c", "b|c"}
    assert (got["a|b"]["n"], got["a|b"]["tp"], got["a|b"]["fp"], got["a|b"]["tn"]) == (3, 1, 1, 1)
    assert got["b|c"]["kappa"]["value"] == 1.0 and got["b|c"]["n"] == 5
