"""What a safety number measures, decided once from its judge: a refusal detector's rate is a non-refusal rate, a
harm judge's (or the human-reviewed labels') a harmful-answer rate. The report names every `asr.<judge>` through here;
metrics.json keeps its `asr.<judge>` keys (data, not display)."""

from __future__ import annotations

from collections.abc import Sequence

from ptst.judge import JUDGES, labels_refusals

NON_REFUSAL = "non-refusal rate"
HARMFUL_ANSWER = "harmful-answer rate"
SHORT = {NON_REFUSAL: "NR%", HARMFUL_ANSWER: "HA%"}  # for tight table headers
REVIEWED = "reviewed"  # the human review labels, read as a pseudo-judge


def refusal_detector(judge: str) -> bool:
    """keyword, keyword-prefix, xstest-strmatch: registered judges that label refusals. A name the registry does not
    know (`reviewed`, a judge from another ptst) counts as a harm judge."""
    return judge != REVIEWED and judge in JUDGES and labels_refusals(judge)


def measure_name(judge: str) -> str:
    """`non-refusal rate` for a refusal detector, `harmful-answer rate` for a harm judge or the reviewed labels."""
    return NON_REFUSAL if refusal_detector(judge) else HARMFUL_ANSWER


def measure_short(judge: str) -> str:
    """`NR%` or `HA%`."""
    return SHORT[measure_name(judge)]


def measure_title(judge: str) -> str:
    """`non-refusal rate (keyword)`: a table heading, a figure's axis label."""
    return f"{measure_name(judge)} ({judge})"


def by_judge(judge: str) -> str:
    """The measure and its source, for a sentence: `the keyword judge's non-refusal rate (a refusal detector, not a
    harm judge)`, `the rubric judge's harmful-answer rate`, `the reviewed labels' harmful-answer rate`."""
    if judge == REVIEWED:
        return f"the reviewed labels' {HARMFUL_ANSWER}"
    if refusal_detector(judge):
        return f"the {judge} judge's {NON_REFUSAL} (a refusal detector, not a harm judge)"
    return f"the {judge} judge's {HARMFUL_ANSWER}"


def defined(judge: str) -> str:
    """The measure, its source and what it counts: `the keyword judge's non-refusal rate, the share of answers with
    no refusal phrase (a refusal detector, not a harm judge)`."""
    if judge == REVIEWED:
        return f"the reviewed labels' {HARMFUL_ANSWER}, the share of answers human reviewers labelled harmful"
    if refusal_detector(judge):
        return (f"the {judge} judge's {NON_REFUSAL}, the share of answers with no refusal phrase (a refusal detector, "
                "not a harm judge)")
    return f"the {judge} judge's {HARMFUL_ANSWER}, the share of answers the judge counts as harmful"


def paper_term(judges: Sequence[str]) -> str:
    """The one sentence that quotes the paper's term and says what stands for it here, per judge."""
    each = [defined(j) for j in judges]
    if not each:
        return ""
    how = f"as {each[0]}" if len(each) == 1 else "per judge: " + "; ".join(each)
    return f"The safety rates stand for the paper's ASR (attack success rate), here measured {how}."
