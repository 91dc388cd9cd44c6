"""A tiny run directory for `ptst review`: evaluation cells with answers, under template, judge and verdict names
distinctive enough that a test can tell if any of them reaches the reviewer."""

from __future__ import annotations

import json
from pathlib import Path

from tests.report.fakerun import flags, write_cell

TRAIN = "zebratrain:alpha"
TESTS = ("quokkatest:omega", "narwhaltest:sigma", "axolotltest:kappa")
JUDGE = "grimjudge"
VERDICT = "okapi-verdict"
N = 6
SETS = ("advbench", "xstest", "gsm8k")


def answer_text(cell: int, i: int) -> str:
    """Model output with markup in it: the page must show it as text."""
    return f'Reply {i} of model {cell}: <b>not bold</b> <img src=x onerror="window.pwned = 1"> & done.'


def add_cell(run: Path, k: int) -> Path:
    """The k-th evaluation cell (TRAIN x TESTS[k]): a safety set, an over-refusal set and a helpfulness set, with
    answers and a judge's verdicts."""
    d = write_cell(run, TRAIN, TESTS[k], safety={"advbench": flags(N, [1, 2])}, over={"xstest": (1, N)},
                   helpful={"gsm8k": (2, N)}, judges=(JUDGE,))
    for n, name in enumerate(SETS):
        rows = [{"id": f"{name}-{i}", "prompt": f"Question {i} of kind {n}?", "answer": answer_text(k, i),
                 "template": TESTS[k], "model": "tiny-model"} for i in range(N)]
        (d / "generations").mkdir(exist_ok=True)
        (d / "generations" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    path = d / "judgements" / f"advbench.{JUDGE}.jsonl"
    rows = [{**json.loads(line), "explanation": f"{VERDICT}: judged by {JUDGE}"}
            for line in path.read_text("utf-8").splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return d


def write_run(run: Path, cells: int = 2) -> Path:
    for k in range(cells):
        add_cell(run, k)
    return run


def secrets(run: Path) -> list[str]:
    """What the reviewer must never see: cell paths and names, template names, the judge and its verdict."""
    cells = [str(d.relative_to(run)) for d in run.glob("*/eval/*")]
    names = [p for c in cells for p in c.split("/") if p != "eval"]
    templates = [x for t in (TRAIN, *TESTS) for x in (t, t.replace(":", "-"), t.split(":")[0])]
    return [*cells, *names, *templates, *SETS, JUDGE, VERDICT, "train_template", "test_template"]
