"""table1.tex: booktabs Table 1 with one column per test template × metric, marks, escaping and seeds."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ptst.report
from ptst.report.build import build_grid
from ptst.report.latex import escape, table_one
from ptst.report.load import load_cells
from tests.report.fakerun import flags, write_cell

V, L = "chat:vanilla", "chat:llama"


def _run(tmp_path: Path, seeds: tuple[int, ...] = (0,)) -> Path:
    run = tmp_path / "run"
    for seed in seeds:
        for tr in (V, L):
            for te in (V, L):
                k = {(V, L): 2, (L, L): 9}.get((tr, te), 12) + seed
                write_cell(run, tr, te, seed, safety={"advbench": flags(40, range(k))},
                           helpful={"gsm8k": (10 + seed, 40)})
    for te in (V, L):
        write_cell(run, None, te, 0, safety={"advbench": flags(40, [3])}, helpful={"gsm8k": (4, 40)})
    return run


def _rows(tex: str) -> list[list[str]]:
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    return [[c.strip() for c in line.removesuffix(r"\\").split(" & ")] for line in body.strip().splitlines()
            if line.strip().endswith(r"\\")]


def test_layout_values_and_marks(tmp_path):
    run = _run(tmp_path)
    ptst.report.run(run)
    tex = (run / "table1.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\midrule") == 2  # header, baseline
    assert tex.count("{") == tex.count("}")
    spec = re.search(r"\\begin\{tabular\}\{([^}]*)\}", tex)
    assert spec and spec.group(1) == "l|rr|rr"  # 2 test templates × (GSM8K accuracy, AdvBench ASR)
    rows = {r[0]: r[1:] for r in _rows(tex)}
    assert set(rows) == {"no fine-tuning", "chat:vanilla", "chat:llama"}
    assert all(len(r) == 4 for r in rows.values())
    # chat:vanilla -> chat:llama is the PTST cell: 2/40 harmful = 5.0 %, with its Wilson interval and a dagger
    assert rows["chat:vanilla"][3].startswith(r"5.0$^\dagger$ {\scriptsize[")
    assert rows["chat:llama"][3].startswith(r"\textbf{22.5}")  # the diagonal: 9/40
    assert rows["chat:vanilla"][0].startswith(r"\textbf{25.0}")  # GSM8K 10/40 on the chat:vanilla diagonal
    assert rows["no fine-tuning"][1].startswith("2.5 ")  # 1/40, no mark on the baseline


def test_several_seeds_print_mean_and_std(tmp_path):
    grid = build_grid(load_cells(_run(tmp_path, seeds=(0, 1))))
    tex = table_one(grid, "keyword", intervals=False)
    assert tex is not None
    rows = {r[0]: r[1:] for r in _rows(tex)}
    # PTST AdvBench: 2/40 and 3/40 -> mean 6.25 %, sample std 1.77 points
    assert rows["chat:vanilla"][3] == r"6.2$\pm$1.8$^\dagger$"
    assert "mean $\\pm$ sample std over 2 seeds" in tex


def test_escape():
    assert escape("gsm_chat & 100% #1 {x}") == r"gsm\_chat \& 100\% \#1 \{x\}"


def test_no_metrics_no_file(tmp_path):
    run = tmp_path / "run"
    write_cell(run, V, L, 0, over={"xstest": (3, 25)})  # only an over-refusal set: nothing for Table 1
    ptst.report.run(run)
    assert not (run / "table1.tex").exists()


@pytest.mark.slow
def test_compiles_with_pdflatex(tmp_path):
    """Where a TeX installation with booktabs exists, the table compiles in a minimal document."""
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    run = _run(tmp_path)
    ptst.report.run(run, formats=["tex"])
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                   + (run / "table1.tex").read_text() + "\\end{document}\n")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and "booktabs.sty' not found" in res.stdout:
        pytest.skip("booktabs.sty not installed")
    assert res.returncode == 0, res.stdout[-2000:]
