"""The grid config's `report:` section: `report.compare` checked entry by entry, parsed, and operational."""

from __future__ import annotations

import pytest

from ptst.errors import PtstError
from ptst.grid.checks import grid_changes
from ptst.grid.config import GridConfig
from ptst.specs.eval import EvalSpec
from ptst.specs.report import compare_pairs, of_run

BASE = {"name": "g", "model": "m", "train_templates": ["chat:vanilla"], "test_templates": ["chat:llama"],
        "evals": [EvalSpec("advbench")]}
PTST = "chat:vanilla -> chat:llama"


def test_compare_is_parsed_with_either_arrow_and_mixing_rows():
    got = compare_pairs([["chat:inoculation-tan -> chat:vanilla", "chat:vanilla → chat:llama"],
                         ["chat:llama + safety->chat:llama", PTST]])
    assert got == [(("chat:inoculation-tan", "chat:vanilla"), ("chat:vanilla", "chat:llama")),
                   (("chat:llama + safety", "chat:llama"), ("chat:vanilla", "chat:llama"))]
    a = GridConfig(**BASE)
    b = GridConfig(**BASE, report={"compare": [["chat:inoculation-tan -> chat:vanilla", PTST]]})
    assert grid_changes(a, b) == [] and grid_changes(a, b, evaluation=True) == []  # operational


@pytest.mark.parametrize(("compare", "message"), [
    (PTST, r"^report.compare must be a list of \[A, B\] pairs"),
    ([[PTST, "chat:llama -> chat:llama"], [PTST]], r"^report.compare\[1\]: expected a two-element list"),
    ([[PTST, "chat:llama -> chat:llama", "chat:vanilla -> chat:vanilla"]], r"^report.compare\[0\]: expected a two"),
    ([PTST], r"^report.compare\[0\]: expected a two-element list \[A, B\].*got 'chat:vanilla -> chat:llama'$"),
    ([[PTST, "chat:llama"]], r"^report.compare\[0\]\[1\]: expected a path 'TRAIN -> TEST'.*got 'chat:llama'$"),
    ([[" -> chat:llama", PTST]], r"^report.compare\[0\]\[0\]: expected a path 'TRAIN -> TEST' with both sides"),
    ([[PTST, "chat:llama -> "]], r"^report.compare\[0\]\[1\]: expected a path"),
    ([[PTST, "a -> b -> c"]], r"^report.compare\[0\]\[1\]: expected a path"),
    ([[PTST, 3]], r"^report.compare\[0\]\[1\]: expected a path"),
    ([[PTST, "chat:vanilla→chat:llama"]], r"^report.compare\[0\]: A and B are the same path"),
])
def test_a_malformed_compare_is_one_clear_error(compare, message):
    with pytest.raises(PtstError, match=message):
        GridConfig(**BASE, report={"compare": compare})


def test_unknown_keys_name_the_known_ones():
    with pytest.raises(PtstError, match=r"unknown key 'comapre' \(known: compare, kappa_threshold\)"):
        GridConfig(**BASE, report={"comapre": []})


def test_the_run_directory_section_is_read_back(tmp_path):
    assert of_run(None) == {} and of_run(tmp_path) == {}
    (tmp_path / "grid.yaml").write_text(f"name: x\nreport:\n  compare:\n    - ['{PTST}', 'chat:llama -> chat:llama']\n")
    assert of_run(tmp_path) == {"compare": [[PTST, "chat:llama -> chat:llama"]]}
    (tmp_path / "grid.yaml").write_text("name: [x\n")  # unreadable: nothing configured
    assert of_run(tmp_path) == {}


def test_a_grid_yaml_that_is_not_utf8_is_one_error_line(tmp_path):
    (tmp_path / "grid.yaml").write_bytes(b"name: x\nreport: {}\n\xff\xfe\n")
    with pytest.raises(PtstError, match=r"grid.yaml: not UTF-8 text \(invalid start byte at byte 19, line 3\)"):
        of_run(tmp_path)
