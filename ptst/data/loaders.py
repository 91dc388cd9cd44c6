"""How each registered set's source rows become Example fields (input, response, reference, meta)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ptst.data.readers import iter_jsonl_numbered, json_list, read_csv, read_csv_rows, read_json, read_parquet, require
from ptst.data.types import Loader, Row
from ptst.errors import PtstError

_GSM8K_ANSWER = re.compile(r"####\s*(\S[^\n]*?)\s*$")
ARC_LETTERS = "ABCDEFGH"


def gsm8k_reference(answer: str) -> str | None:
    """The final number of a GSM8K answer: what follows `####`, thousands separators removed."""
    m = _GSM8K_ANSWER.search(answer)
    return m.group(1).replace(",", "") if m else None


def instruction_input(instruction: str, context: str | None) -> str:
    """Alpaca's two fields as one user input: the instruction, then a blank line and the input if any."""
    return f"{instruction}\n\n{context}" if context and context.strip() else instruction


def arc_label(label: str) -> str:
    """ARC uses letters for most questions and 1-4 (or 1-5) for some; normalise digits to letters."""
    label = label.strip()
    if label.isdigit() and 1 <= int(label) <= len(ARC_LETTERS):
        return ARC_LETTERS[int(label) - 1]
    return label.upper()


def arc_prompt(stem: str, choices: list[dict[str, str]]) -> str:
    """`stem`, one `X. text` line per choice, then `Answer:` (the format the helpfulness scorer expects)."""
    return "\n".join([stem.strip(), *(f"{c['label']}. {c['text']}" for c in choices), "Answer:"])


def harmbench_input(behavior: str, context: str | None) -> str:
    """HarmBench's own rule for contextual behaviours: the context, a `---` separator, then the behaviour."""
    return f"{context}\n\n---\n\n{behavior}" if context else behavior


def load_gsm8k(paths: list[Path], split: str) -> list[Row]:
    path, rows = paths[0], []
    for i, (line, r) in enumerate(iter_jsonl_numbered(path)):
        answer = require(r, "answer", path, line)
        rows.append(Row(i, require(r, "question", path, line), response=answer, reference=gsm8k_reference(answer)))
    return rows


def load_arc(paths: list[Path], split: str) -> list[Row]:
    path, rows = paths[0], []
    for i, (line, r) in enumerate(iter_jsonl_numbered(path)):
        q = require(r, "question", path, line)
        choices = [{"label": arc_label(str(c["label"])), "text": c["text"]} for c in require(q, "choices", path, line)]
        texts = {c["label"]: c["text"] for c in choices}
        key = arc_label(str(require(r, "answerKey", path, line)))
        if key not in texts:
            raise PtstError(f"{path}:{line}: answerKey {key!r} is not one of the choices {sorted(texts)}")
        meta = {"arc_id": r.get("id"), "choices": choices}
        prompt = arc_prompt(require(q, "stem", path, line), choices)
        rows.append(Row(i, prompt, response=f"{key}. {texts[key]}", reference=key, meta=meta))
    return rows


def load_instruction_json(paths: list[Path], split: str) -> list[Row]:
    """Alpaca-format JSON arrays of {instruction, input, output} (Alpaca, ChatDoctor, Safety-Tuned LLaMAs)."""
    path, rows = paths[0], []
    for i, r in enumerate(json_list(path)):
        where = f"item {i}"
        if not isinstance(r, dict):
            raise PtstError(f"{path}:{where}: expected an object with instruction/input/output")
        instruction, context = require(r, "instruction", path, where), r.get("input") or ""
        meta = {"instruction": instruction, "context": context}
        output = require(r, "output", path, where)
        rows.append(Row(i, instruction_input(instruction, context), response=output, meta=meta))
    return rows


def in_heldout(text: str, modulus: int = 10) -> bool:
    """Whether a row belongs to a hash-defined held-out split: sha256 of its stripped input, first 8 hex digits,
    is 0 modulo `modulus`. Content-defined, so it is the same on every machine and for every row order, and
    duplicate inputs always land on the same side."""
    return int(hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:8], 16) % modulus == 0


def load_chatdoctor(paths: list[Path], split: str) -> list[Row]:
    """GenMedGPT-5k with a deterministic train/test split (test = the rows whose patient text is `in_heldout`:
    552 of 5,452); every row's reference is the doctor's answer. Row indices stay those of the source file."""
    rows = load_instruction_json(paths, split)
    keep = split == "test"
    return [replace(r, reference=r.response) for r in rows if in_heldout(str(r.meta["context"])) == keep]


def load_instruction_list(paths: list[Path], split: str) -> list[Row]:
    """Bianchi et al.'s evaluation files: {"instructions": [str, ...]}."""
    return [Row(i, str(s), meta={"subset": split}) for i, s in enumerate(json_list(paths[0], "instructions"))]


def load_advbench(paths: list[Path], split: str) -> list[Row]:
    """The goal column; works for PTST's header-less copy and the original goal,target file alike."""
    recs = read_csv_rows(paths[0])
    if recs and recs[0][0].strip().lower() == "goal":
        recs = recs[1:]
    return [Row(i, r[0]) for i, r in enumerate(recs)]


def load_instruction_parquet(paths: list[Path], split: str) -> list[Row]:
    """DirectHarm4 / GSM-Danger: an `instruction` column; every other column goes to meta."""
    path, rows = paths[0], []
    for i, r in enumerate(read_parquet(path)):
        text = require(r, "instruction", path, f"row {i}")
        rows.append(Row(i, text, meta={k: v for k, v in r.items() if k != "instruction"}))
    return rows


def load_harmbench(paths: list[Path], split: str) -> list[Row]:
    path, rows = paths[0], []
    for i, (line, r) in enumerate(read_csv(path)):
        behavior, context = require(r, "Behavior", path, line), r.get("ContextString") or None
        meta = {
            "behavior_id": require(r, "BehaviorID", path, line), "behavior": behavior, "context": context,
            "functional_category": r.get("FunctionalCategory"), "semantic_category": r.get("SemanticCategory"),
            "tags": r.get("Tags") or "",
        }
        rows.append(Row(i, harmbench_input(behavior, context), meta=meta))
    return rows


def load_strongreject(paths: list[Path], split: str) -> list[Row]:
    path, rows = paths[0], []
    for i, (line, r) in enumerate(read_csv(path)):
        meta = {"category": r.get("category"), "source": r.get("source")}
        rows.append(Row(i, require(r, "forbidden_prompt", path, line), meta=meta))
    return rows


def _jbb_artifact(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("jailbreaks"), list):
        raise PtstError(f"{path}: not a JailbreakBench artifact (no 'jailbreaks' list)")
    return data.get("parameters") or {}, data["jailbreaks"]


def _jbb_meta(j: dict[str, Any]) -> dict[str, Any]:
    return {"jbb_index": j.get("index"), "behavior": j.get("behavior"), "category": j.get("category")}


def load_jbb_behaviors(paths: list[Path], split: str) -> list[Row]:
    """The 100 JBB harmful behaviours (goal strings) as carried by the GCG artifact."""
    path = paths[0]
    items = _jbb_artifact(path)[1]
    return [Row(i, require(j, "goal", path, f"jailbreaks[{i}]"), meta=_jbb_meta(j)) for i, j in enumerate(items)]


def load_jbb_gcg(paths: list[Path], split: str) -> list[Row]:
    """GCG prompts (goal + optimised suffix) from one JailbreakBench artifact file."""
    path, rows = paths[0], []
    params, items = _jbb_artifact(path)
    for i, j in enumerate(items):
        prompt = require(j, "prompt", path, f"jailbreaks[{i}]")
        if not isinstance(prompt, str):
            raise PtstError(f"{path}:jailbreaks[{i}]: the artifact has no prompt for this behaviour")
        meta = {**_jbb_meta(j), "goal": j.get("goal"), "attack": params.get("method", "GCG"),
                "attack_type": params.get("attack_type"), "artifact_model": params.get("model")}
        rows.append(Row(i, prompt, meta=meta))
    return rows


def xstest_loader(label: str | None = None) -> Loader:
    """XSTest prompts, optionally only those labelled `safe` or `unsafe` (ids keep the file's row index)."""

    def load(paths: list[Path], split: str) -> list[Row]:
        path, rows = paths[0], []
        for i, (line, r) in enumerate(read_csv(path)):
            if label is not None and require(r, "label", path, line) != label:
                continue
            meta = {"xstest_id": r.get("id"), "type": r.get("type"), "label": r.get("label"),
                    "focus": r.get("focus"), "note": r.get("note")}
            rows.append(Row(i, require(r, "prompt", path, line), meta=meta))
        return rows

    return load


def load_openorca(paths: list[Path], split: str) -> list[Row]:
    path, rows = paths[0], []
    for i, r in enumerate(read_parquet(path)):
        meta = {"orca_id": r.get("id"), "system_prompt": r.get("system_prompt") or ""}
        where = f"row {i}"
        question, response = require(r, "question", path, where), require(r, "response", path, where)
        rows.append(Row(i, question, response=response, meta=meta))
    return rows


# ---- judge validation: human-labelled answers (input = the prompt, response = the answer judged) ----

XSTEST_COMPLETION_FIELDS = ("id", "type", "prompt", "completion", "final_label")
JBB_JUDGE_FIELDS = ("Index", "goal", "prompt", "target_response", "human1", "human2", "human3", "human_majority")
JBB_STORED_JUDGES = ("harmbench_cf", "gpt4_cf", "llamaguard2_cf", "llama3_cf")


def _check_header(path: Path, row: dict[str, str], needed: tuple[str, ...]) -> None:
    missing = [c for c in needed if c not in row]
    if missing:
        raise PtstError(f"{path}: missing column {missing[0]!r} (columns: {', '.join(row)})")


def xstest_completion_model(path: Path) -> str:
    """`xstest_v2_completions_llama2orig.csv` -> "llama2orig" (the answering system); other names: the stem."""
    return re.sub(r"^xstest_v\d+_completions_", "", path.stem)


def load_xstest_completions(paths: list[Path], split: str) -> list[Row]:
    """XSTest v2 model completions with their human labels, one file per answering system; id = MODEL-XSTESTID."""
    rows: list[Row] = []
    for path in paths:
        model = xstest_completion_model(path)
        for _, r in read_csv(path):
            _check_header(path, r, XSTEST_COMPLETION_FIELDS)
            meta = {"model": model, "xstest_id": r["id"], "type": r["type"],
                    "label": "unsafe" if r["type"].startswith("contrast_") else "safe",
                    "final_label": r["final_label"].strip(), "annotation_1": r.get("annotation_1"),
                    "annotation_2": r.get("annotation_2"), "agreement": r.get("agreement")}
            rows.append(Row(len(rows), r["prompt"], response=r["completion"], meta=meta,
                            id=f"{model}-{r['id']}"))
    return rows


def read_text_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """A CSV read as UTF-8, or as Mac Roman when it is not valid UTF-8 (the pinned JBB judge_comparison copy)."""
    try:
        return list(read_csv(path))
    except UnicodeDecodeError:
        return list(read_csv(path, encoding="mac_roman"))


def load_jbb_judge_comparison(paths: list[Path], split: str) -> list[Row]:
    """JailbreakBench's 300 human-labelled jailbreak answers; meta carries the humans' and four judges' verdicts.

    input = the `goal` (the harmful request), as JailbreakBench's judges read it (`{goal}` in their prompts);
    the jailbreak prompt the target model answered is meta.attack_prompt."""
    path, rows = paths[0], list[Row]()
    for _, r in read_text_csv(path):
        _check_header(path, r, JBB_JUDGE_FIELDS)
        meta: dict[str, Any] = {"jbb_index": r["Index"], "attack_prompt": r["prompt"]}
        meta.update({k: r[k].strip() for k in JBB_JUDGE_FIELDS[4:]})
        meta["stored_judges"] = {k: r[k].strip() for k in JBB_STORED_JUDGES if k in r}
        rows.append(Row(len(rows), r["goal"], response=r["target_response"], meta=meta, id=f"jbb-{r['Index']}"))
    return rows
