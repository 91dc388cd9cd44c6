"""Metrics against hand-computed and published values: Wilson, McNemar (per seed and combined over seeds), mean
score, ROUGE-L, token F1."""

from __future__ import annotations

import math

import pytest

from ptst.metrics import (
    Paired,
    agreement,
    asr,
    by_category,
    cohen_kappa,
    judge_agreement,
    lcs_length,
    mcnemar_exact,
    mean_score,
    paired,
    paired_combined,
    paired_mean_combined,
    rate,
    rouge_l_f1,
    token_f1,
    wilson,
)
from ptst.records import Judgement
from ptst.stats import chi2_sf, homogeneity, t_crit


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


# ---- several seeds: paired tests combined (ptst.metrics.paired_combined, ptst.stats) ----

def _pair(b: int, c: int, n: int) -> Paired:
    """`paired` on n prompts: b counted in A only, c in B only, the rest in neither."""
    a = {str(i): i < b for i in range(n)}
    bb = {str(i): b <= i < b + c for i in range(n)}
    return paired(a, bb)


def test_paired_combined_pools_the_discordant_pairs_by_hand():
    """Seeds with (b, c) = (1, 6) and (2, 7) on 20 prompts each. Neither seed is significant alone:
    p_0 = 2 (C(7,0) + C(7,1)) / 2^7 = 16/128 = 0.125, p_1 = 2 (1 + 9 + 36) / 2^9 = 92/512 = 0.1796875.
    Pooled: b = 3, c = 13 over 16 discordant pairs, p = 2 (C(16,0) + C(16,1) + C(16,2) + C(16,3)) / 2^16
    = 2 (1 + 16 + 120 + 560) / 65536 = 1394 / 65536 = 0.021270751953125.
    Two seeds: the pooled paired difference (3 - 13) / 40 = -0.25 with se = sqrt(16 - 10^2 / 40) / 40
    = sqrt(13.5) / 40 = 0.0918559, so -0.25 -+ 1.959964 * 0.0918559 = [-0.430034, -0.069966].
    Homogeneity (Fisher, given 7 and 9 discordant pairs and 3 in A only): the tables x = 0..3 weigh
    C(7,x) C(9,3-x) = 84, 252, 189, 35 (of C(16,3) = 560); the observed x = 1 is the likeliest, so p = 1."""
    s0, s1 = _pair(1, 6, 20), _pair(2, 7, 20)
    assert (s0.p_value, s1.p_value) == (0.125, 0.1796875)
    cb = paired_combined({1: s1, 0: s0})
    assert (cb.seeds, cb.n_pairs, cb.b, cb.c) == ((0, 1), 40, 3, 13)
    assert cb.p_value == 1394 / 65536 == 0.021270751953125
    assert cb.diffs == (-0.25, -0.25) and cb.diff == -0.25 and cb.interval == "pooled normal"
    assert cb.low == pytest.approx(-0.430034, abs=1e-6) and cb.high == pytest.approx(-0.069966, abs=1e-6)
    assert (cb.heterogeneity_p, cb.heterogeneity_test) == (1.0, "exact")
    d = cb.to_dict()
    assert d["b"] == 3 and d["p_value"] == cb.p_value and d["interval"] == "pooled normal"


def test_paired_combined_three_seeds_use_a_t_interval_over_seeds():
    """A third seed (0, 8): pooled b = 3, c = 21, p = 2 (1 + 24 + 276 + 2024) / 2^24 = 4650 / 16777216.
    Per-seed differences -5/20, -5/20, -8/20: mean -0.3, sd sqrt((0.05^2 + 0.05^2 + 0.1^2) / 2) = sqrt(0.0075),
    se = sd / sqrt 3 = 0.05; t(2, 0.975) = 4.302653, so -0.3 -+ 0.2151327 = [-0.5151327, -0.0848673]."""
    cb = paired_combined({0: _pair(1, 6, 20), 1: _pair(2, 7, 20), 2: _pair(0, 8, 20)})
    assert (cb.b, cb.c, cb.n_pairs) == (3, 21, 60) and cb.p_value == 4650 / 2**24
    assert cb.diffs == (-0.25, -0.25, -0.4) and cb.diff == pytest.approx(-0.3) and cb.interval == "t over seeds"
    assert cb.low == pytest.approx(-0.5151327, abs=1e-6) and cb.high == pytest.approx(-0.0848673, abs=1e-6)


def test_paired_combined_says_when_the_seeds_disagree():
    """(b, c) = (0, 5) and (5, 0): each seed p = 2 / 2^5 = 0.0625, pooled (5, 5) p = 1, difference 0. Fisher, given 5
    and 5 discordant pairs and 5 in A only: the tables x = 0..5 weigh C(5,x)^2 = 1, 25, 100, 100, 25, 1 (of
    C(10,5) = 252); those no likelier than the observed x = 0 are x = 0 and x = 5, so p = 2/252 = 0.0079365."""
    cb = paired_combined({0: _pair(0, 5, 50), 1: _pair(5, 0, 50)})
    assert (cb.b, cb.c, cb.p_value, cb.diff) == (5, 5, 1.0, 0.0) and cb.diffs == (-0.1, 0.1)
    assert cb.heterogeneity_p == pytest.approx(2 / 252, rel=1e-12) and cb.heterogeneity_test == "exact"
    # a seed without discordant pairs says nothing about how they split: left out of the homogeneity test
    assert paired_combined({0: _pair(0, 5, 50), 1: _pair(0, 0, 50)}).heterogeneity_p is None
    assert paired_combined({0: _pair(3, 1, 10)}).heterogeneity_p is None  # one seed: nothing to compare
    with pytest.raises(ValueError):
        paired_combined({0: paired({}, {})})


def test_homogeneity_exact_for_three_seeds_and_its_chi_square_fallback():
    """(b, c) = (0, 2), (2, 0), (1, 1): given m = 2, 2, 2 and 3 in A only, the tables are the 6 orderings of
    (2, 1, 0), each weighing C(2,2) C(2,1) C(2,0) = 2, and (1, 1, 1) weighing 8 (of C(6,3) = 20); the observed table
    weighs 2, so p = 12/20 = 0.6. Pearson: pi = 1/2, X^2 = (0-1)^2/0.5 + (2-1)^2/0.5 + 0 = 4 on 2 df, p = e^-2."""
    assert homogeneity([0, 2, 1], [2, 0, 1]) == (pytest.approx(0.6), "exact")
    p, how = homogeneity([0, 2, 1], [2, 0, 1], max_tables=1)
    assert how == "chi-square" and p == pytest.approx(math.exp(-2))
    assert homogeneity([0, 0], [3, 4]) == (1.0, "exact")  # every discordant pair goes the same way
    assert homogeneity([3, 0], [1, 0]) is None


@pytest.mark.parametrize(("df", "t"), [(1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (29, 2.045230)])
def test_t_critical_values(df, t):  # two-sided 95% values from any t table
    assert t_crit(df) == pytest.approx(t, abs=1e-6)


@pytest.mark.parametrize(("x", "df"), [(3.841459, 1), (5.991465, 2), (7.814728, 3), (9.487729, 4), (11.070498, 5)])
def test_chi_square_tail_at_the_tabled_5_percent_points(x, df):
    assert chi2_sf(x, df) == pytest.approx(0.05, abs=1e-7)


def test_paired_mean_combined_by_hand():
    """Seed 0 differences 1, 0, 2, 1 (mean 1, sd^2 2/3); seed 1: 2, 3, 3, 4 (mean 3, sd^2 2/3). As one sample of 8:
    mean 2, sum of squares 12, sd^2 12/7, se = sqrt(12/7/8) = sqrt(3/14); z = 2 / se, p = erfc(z / sqrt 2);
    interval 2 -+ 1.959964 sqrt(3/14). Cochran's Q: w = 1 / (2/3 / 4) = 6 per seed, Q = 6 (1-2)^2 + 6 (3-2)^2 = 12 on
    1 df, p = erfc(sqrt 6)."""
    from ptst.metrics import paired_mean

    zero = {str(i): 0.0 for i in range(4)}
    s0 = paired_mean({str(i): v for i, v in enumerate([1.0, 0.0, 2.0, 1.0])}, zero)
    s1 = paired_mean({str(i): v for i, v in enumerate([2.0, 3.0, 3.0, 4.0])}, zero)
    cb = paired_mean_combined({0: s0, 1: s1})
    se = math.sqrt(3 / 14)
    assert (cb.b, cb.c, cb.n_pairs, cb.diffs, cb.diff) == (None, None, 8, (1.0, 3.0), 2.0)
    assert cb.p_value == pytest.approx(math.erfc(2 / se / math.sqrt(2)))
    assert cb.low == pytest.approx(2 - 1.959963984540054 * se) and cb.high == pytest.approx(2 + 1.959963984540054 * se)
    assert cb.heterogeneity_test == "Cochran's Q" and cb.heterogeneity_p == pytest.approx(math.erfc(math.sqrt(6)))
