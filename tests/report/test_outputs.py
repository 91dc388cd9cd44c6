"""The files `ptst report` writes: valid non-trivial PNGs, a self-contained HTML page, errors and the CLI."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

import ptst.report
from ptst.cli import main
from ptst.errors import PtstError
from tests.report.fakerun import flags, write_cell

PNG = b"\x89PNG\r\n\x1a\n"
V, L, T = "chat:vanilla", "chat:llama", "text:vanilla"
CATS = ["malware", "drug", "phishing", "disinfo"] * 10


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 × 3 templates + baseline, 2 seeds, AdvBench + DirectHarm4 (categories) + GSM8K + XSTest, checkpoints."""
    run = tmp_path_factory.mktemp("full") / "run"
    asr = {(T, L): 2, (V, L): 1, (L, L): 9}
    for seed in (0, 1):
        for tr in (T, V, L):
            for te in (T, V, L):
                k = asr.get((tr, te), 12 if tr == te else 8) + seed
                write_cell(run, tr, te, seed, safety={"advbench": flags(40, range(k)),
                                                      "directharm4": flags(40, range(0, 40, max(1, 40 // (k + 1))))},
                           helpful={"gsm8k": (15 + seed + len(tr), 40)}, over={"xstest": (4 + k // 3, 25)},
                           categories={"directharm4": CATS})
            for step in (10, 20):
                write_cell(run, tr, L, seed, step=step, safety={"advbench": flags(40, range(step // 5))},
                           helpful={"gsm8k": (10 + step // 2, 40)})
    for te in (T, V, L):
        write_cell(run, None, te, 0, safety={"advbench": flags(40, [3]), "directharm4": flags(40, [])},
                   helpful={"gsm8k": (9, 40)}, over={"xstest": (2, 25)}, categories={"directharm4": CATS})
    ptst.report.run(run)
    return run


EXPECTED_FIGURES = {
    "fig-heatmap-gsm8k-accuracy.strict.png", "fig-heatmap-gsm8k-accuracy.flexible.png",
    "fig-heatmap-advbench-asr.keyword.png", "fig-heatmap-directharm4-asr.keyword.png",
    "fig-heatmap-xstest-over_refusal.keyword.png", "fig-scatter-keyword.png",
    "fig-categories-directharm4-keyword.png", "fig-checkpoints-keyword.png",
    # the fake run evaluates checkpoints and has a helpfulness set: the frontier, one figure per safety set that
    # was evaluated at a checkpoint (DirectHarm4 is at the final adapters only: no path to draw)
    "fig-frontier-advbench-keyword.png",
}


def test_every_figure_is_a_real_png(full_run: Path) -> None:
    from matplotlib.image import imread

    assert {p.name for p in full_run.glob("*.png")} == EXPECTED_FIGURES
    for name in EXPECTED_FIGURES:
        data = (full_run / name).read_bytes()
        assert data.startswith(PNG), name
        img = imread(full_run / name)
        h, w = img.shape[:2]
        assert h >= 300 and w >= 400, (name, img.shape)
        flat = img[..., :3].reshape(-1, 3)
        assert flat.std() > 0.05, name  # not a blank canvas
        assert len({tuple(px) for px in flat[:: max(1, len(flat) // 20000)].round(2)}) > 20, name


def test_report_md_links_the_figures_it_wrote(full_run: Path) -> None:
    md = (full_run / "report.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((fig-[^)]+\.png)\)", md))
    assert linked == EXPECTED_FIGURES
    assert "### XSTest — over-refusal (keyword)" in md and "## Provenance" in md
    assert "| judge: keyword | version `kw-1` |" in md and "| data sha256: advbench | `sha-advbench` |" in md


def test_html_is_self_contained(full_run: Path) -> None:
    page = (full_run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == len(EXPECTED_FIGURES)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert "<strong>" in page and "†" in page and "<style>" in page
    assert page.count("<table>") == page.count("</table>") >= 6


def test_html_escapes_what_it_reads(tmp_path: Path) -> None:
    write_cell(tmp_path, V, L, safety={"advbench": flags(10, [1])}, experiment="<b>x</b>&y")
    page = (ptst.report.run(tmp_path) / "report.html").read_text(encoding="utf-8")
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;&amp;y" in page


def test_rerun_is_byte_identical_and_leaves_no_temp_files(full_run: Path, tmp_path: Path) -> None:
    out = ptst.report.run(full_run, tmp_path / "again")
    for name in ["results.csv", "report.md", "report.html", *EXPECTED_FIGURES]:
        assert (out / name).read_bytes() == (full_run / name).read_bytes(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_empty_run_dir_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PtstError, match=r"no evaluation results \(no \*/eval/\*/metrics.json\)"):
        ptst.report.run(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ptst: error: ") and "no evaluation results" in err
    assert not (tmp_path / "results.csv").exists()
    with pytest.raises(PtstError, match="run directory not found"):
        ptst.report.run(tmp_path / "nope")


def test_broken_metrics_file_names_the_file(tmp_path: Path) -> None:
    d = write_cell(tmp_path, V, L, safety={"advbench": flags(10, [1])})
    (d / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PtstError, match=r"metrics.json: invalid JSON"):
        ptst.report.run(tmp_path)


def test_metrics_file_of_the_wrong_shape_names_the_file_and_key(tmp_path: Path) -> None:
    import json

    d = write_cell(tmp_path, V, L, safety={"advbench": flags(10, [1])})
    doc = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
    doc["evals"]["advbench"]["n"] = "10"
    (d / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(PtstError) as e:
        ptst.report.run(tmp_path)
    assert str(e.value) == f"{d / 'metrics.json'}: evals.advbench.n must be an integer or null, got str"


def test_report_modules_never_import_the_report_package() -> None:
    """ptst.report's __init__ imports build to run the report: a module of the package importing the package
    back (`from ptst.report import tables`, even inside a function) would close an import cycle."""
    import ast

    for f in sorted(Path(ptst.report.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "ptst.report" and not (node.level and not node.module), f.name
            if isinstance(node, ast.Import):
                assert all(a.name != "ptst.report" for a in node.names), f.name


def test_cli_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, out = tmp_path / "run", tmp_path / "out"
    write_cell(run, V, L, safety={"advbench": flags(20, [1])})
    write_cell(run, L, L, safety={"advbench": flags(20, range(6))})
    assert main(["report", str(run), "--out", str(out), "--format", "md"]) == 0
    assert "wrote results.csv, report.md and figures to" in capsys.readouterr().out
    assert (out / "report.md").exists() and (out / "results.csv").exists() and not (out / "report.html").exists()
    assert not (run / "results.csv").exists()  # --out leaves the run directory untouched
    assert main(["report", str(run), "--format", "pdf"]) == 2
    assert "unknown report format 'pdf'" in capsys.readouterr().err
    assert main(["report", str(run), "--safety-judge", "keywrd"]) == 2
    assert "(did you mean 'keyword'?)" in capsys.readouterr().err
    assert main(["report", str(run), "--safety-judge", "keyword"]) == 0
    assert (run / "report.html").exists()


def test_alignment_summary_is_quoted_in_provenance(tmp_path: Path) -> None:
    import json

    write_cell(tmp_path, V, L, safety={"advbench": flags(10, [1])})
    (tmp_path / "align").mkdir()
    (tmp_path / "align" / "align.json").write_text(json.dumps(
        {"base_model": "smollm2-135m", "summary": "chat:llama: refusal 0% (0/64) -> 98% (63/64)"}))
    md = (ptst.report.run(tmp_path) / "report.md").read_text(encoding="utf-8")
    provenance = md.split("## Provenance", 1)[1]
    assert ("Alignment stage of `smollm2-135m` before fine-tuning (align/align.json): chat:llama: refusal 0% (0/64) "
            "-> 98% (63/64).") in provenance
