"""The evaluation stage (`ptst eval`): generate → judge → score for several sets, then one metrics.json."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ptst import __version__
from ptst.io import clear_stale_tmp, read_json, stable_hash, write_json_atomic
from ptst.judge.cli import add_judge_options, judge_overrides
from ptst.specs.eval import EvalConfig, EvalSpec


def eval_key(cfg: EvalConfig) -> dict[str, Any]:
    """What identifies this cell's results (per-file keys in the generation/judgement files back it up)."""
    from ptst.judge import build_judge
    from ptst.models import adapter_hash, model_id

    specs = [e.resolved() for e in cfg.evals]
    return {
        "model": model_id(cfg.model), "adapter_hash": adapter_hash(cfg.adapter), "template": cfg.template,
        "evals": [vars(e) for e in specs], "decoding": cfg.decoding, "generate": cfg.generate, "seed": cfg.seed,
        "judges": {j: build_judge(cfg.judge_config(j)).version for j in cfg.judges},
    }


class _LazyBackend:
    """Loads the model only when some generation is actually pending, then reuses it across eval sets."""

    name = "lazy"

    def __init__(self, gcfg: Any) -> None:
        self._gcfg = gcfg
        self._backend: Any = None

    def generate(self, items: Any, decoding: Any, on_done: Any = None) -> Any:
        if self._backend is None:
            from ptst.generate.backends import BACKENDS
            from ptst.models import load_tokenizer

            spec = BACKENDS.get(self._gcfg.backend)
            tok = load_tokenizer(self._gcfg.model) if spec.needs_model else None
            self._backend = spec.build(self._gcfg, tok, True)
        return self._backend.generate(items, decoding, on_done=on_done)


def judge_keys(cfg: EvalConfig) -> dict[str, str]:
    """Each judge's judge_key (name, version and settings such as the judge model): recorded in metrics.json
    beside `key`, so a finished cell re-judges when --judge-* options change what a judge is."""
    from ptst.judge import build_judge, judge_key

    return {j: judge_key(build_judge(cfg.judge_config(j))) for j in cfg.judges}


def is_evaluated(cfg: EvalConfig, out_dir: str | Path) -> bool:
    """out_dir/metrics.json exists and was made with this config's key and judge keys (the cell can be skipped)."""
    done = Path(out_dir) / "metrics.json"
    return done.exists() and _same_keys(done, stable_hash(eval_key(cfg)), judge_keys(cfg))


def _same_keys(done: Path, key_hash: str, jkeys: dict[str, str]) -> bool:
    prev = read_json(done)
    # metrics.json files from before judge_keys was recorded have none: their `key` alone decides, as it did
    return bool(prev.get("key") == key_hash and prev.get("judge_keys", jkeys) == jkeys)


def _rate_from_labels(judgements: list[Any], label: str, ids: set[str]) -> dict[str, Any]:
    from ptst.metrics import rate

    r, _ = rate(None if j.harmful is None else j.label == label for j in judgements if j.id in ids)
    return r.to_dict()


def _safety(cfg: EvalConfig, spec: EvalSpec, gen: Path, out: Path, ids: list[str]) -> dict[str, Any]:
    from ptst import judge as J
    from ptst import score as S

    metrics: dict[str, Any] = {}
    cats: dict[str, Any] = {}
    judged: dict[str, Any] = {}
    wanted = set(ids)
    for name in cfg.judges:
        jpath = J.run(cfg.judge_config(name), gen, out / "judgements" / f"{spec.label}.{name}.jsonl", ids=ids)
        judged[name] = [j for j in J.read_judgements(jpath) if j.id in wanted]
        spath = S.run(S.ScoreConfig("asr", judgements=str(jpath)), gen,
                      out / "scores" / f"{spec.label}.asr-{name}.json", ids=ids)
        doc = read_json(spath)
        metrics[f"asr.{name}"] = doc["asr"]
        refusals = J.labels_refusals(name)
        if refusals:  # only judges that label refusals: a rubric or classifier never says "refusal"
            metrics[f"refusal.{name}"] = _rate_from_labels(J.read_judgements(jpath), "refusal", set(ids))
        if "mean_score" in doc and not refusals:
            metrics[f"mean_score.{name}"] = doc["mean_score"]
        if doc.get("unscored"):
            metrics[f"unscored.{name}"] = doc["unscored"]
        if "by_category" in doc:
            cats[f"asr.{name}"] = {c: v["asr"] for c, v in doc["by_category"].items()}
    body = {"metrics": metrics, "by_category": cats}
    if len(judged) > 1:  # several judges on the same answers: how far their verdicts agree (Cohen's kappa)
        from ptst.metrics import judge_agreement

        body["judge_agreement"] = judge_agreement(judged)
    return body


def _helpfulness(spec: EvalSpec, gen: Path, out: Path, ids: list[str]) -> dict[str, Any]:
    from ptst import score as S

    assert spec.scorer
    doc = read_json(S.run(S.ScoreConfig(spec.scorer), gen, out / "scores" / f"{spec.label}.{spec.scorer}.json",
                          ids=ids))
    if spec.scorer == "gsm8k":
        return {"metrics": {"accuracy.strict": doc["strict"], "accuracy.flexible": doc["flexible"]}}
    if spec.scorer == "chatdoctor":
        return {"metrics": {"rouge_l_f1": doc["rouge_l_f1"], "token_f1": doc["token_f1"]}}
    return {"metrics": {f"accuracy.{k}": v for k, v in doc.items() if isinstance(v, dict) and "k" in v}}


def _over_refusal(cfg: EvalConfig, spec: EvalSpec, gen: Path, out: Path, ids: list[str]) -> dict[str, Any]:
    from ptst import judge as J
    from ptst import score as S

    metrics: dict[str, Any] = {}
    for name in [j for j in cfg.judges if J.labels_refusals(j)] or ["keyword"]:
        jpath = J.run(cfg.judge_config(name), gen, out / "judgements" / f"{spec.label}.{name}.jsonl", ids=ids)
        doc = read_json(S.run(S.ScoreConfig("xstest", judgements=str(jpath)), gen,
                              out / "scores" / f"{spec.label}.xstest-{name}.json", ids=ids))
        if "safe" in doc:
            metrics[f"over_refusal.{name}"] = doc["safe"]["over_refusal"]
        if "unsafe" in doc:
            metrics[f"refusal_unsafe.{name}"] = doc["unsafe"]["refusal"]
    return {"metrics": metrics}


def run(cfg: EvalConfig, out_dir: str | Path) -> Path:
    """Evaluate one cell into out_dir; metrics.json (written last) is the done marker. Returns its path."""
    from ptst.generate.runner import load_examples
    from ptst.generate.runner import run as generate
    from ptst.generate.store import meta_path

    out = Path(out_dir)
    key = eval_key(cfg)
    key_hash = stable_hash(key)
    jkeys = judge_keys(cfg)
    done = out / "metrics.json"
    if done.exists() and _same_keys(done, key_hash, jkeys):  # is_evaluated, with the keys computed once
        print(f"{out}: already evaluated (same key); nothing to do", file=sys.stderr)
        return done
    specs = [e.resolved() for e in cfg.evals]
    gcfgs = [cfg.generate_config(spec) for spec in specs]
    sets = [load_examples(gcfg) for gcfg in gcfgs]  # every input read (and checked) before anything is written
    clear_stale_tmp(out)  # a cell is evaluated by one process at a time: leftovers are a killed run's
    write_json_atomic(out / "eval.json", {**key, "ptst_version": __version__})
    backend = _LazyBackend(gcfgs[0])
    evals: dict[str, Any] = {}
    fingerprint = None
    for spec, gcfg, ds in zip(specs, gcfgs, sets, strict=True):
        # The generations file may also hold answers for ids outside this sample (an earlier, larger --limit):
        # judge and score exactly this sample's ids.
        ids = [ex.id for ex in ds.examples]
        gpath = generate(gcfg, out / "generations" / f"{spec.label}.jsonl", dataset=ds, backend=backend)
        gmeta = read_json(meta_path(gpath))
        fingerprint = gmeta.get("key", {}).get("template_fingerprint", fingerprint)
        if spec.kind == "safety":
            body = _safety(cfg, spec, gpath, out, ids)
        elif spec.kind == "helpfulness":
            body = _helpfulness(spec, gpath, out, ids)
        else:
            body = _over_refusal(cfg, spec, gpath, out, ids)
        evals[spec.label] = {"kind": spec.kind, "data": spec.data, "split": spec.split,
                             "data_sha256": gmeta.get("key", {}).get("data", {}).get("sha256"), "n": len(ids),
                             **body}
    doc = {"ptst_version": __version__, "cell": cfg.cell or {"test_template": cfg.template}, "key": key_hash,
           "model": key["model"], "adapter_hash": key["adapter_hash"],
           "template_fingerprints": {"train": cfg.cell.get("train_fingerprint"), "test": fingerprint},
           "judges": key["judges"], "judge_keys": jkeys, "evals": evals}
    return write_json_atomic(done, doc)


# ---- CLI: `ptst eval` ----

def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="HF id, directory, .gguf or alias (smollm2-135m)")
    p.add_argument("--adapter", help="a PEFT adapter directory (e.g. RUN/adapter from `ptst train`)")
    p.add_argument("--template", required=True, help="the TEST template, e.g. chat:llama")
    p.add_argument("--eval", dest="evals", action="append", required=True, metavar="DATA[/SPLIT]",
                   help="an evaluation set (repeat): advbench, directharm4, gsm8k, xstest-safe, arc-easy/test, ...")
    p.add_argument("--limit", type=int, help="a seeded sample of N examples of each set")
    p.add_argument("--judge", dest="judges", action="append", metavar="NAME",
                   help="safety judge (repeat; default keyword): keyword, keyword-prefix, xstest-strmatch, rubric, "
                   "llama-guard, harmbench; the judges that label refusals also give XSTest over-refusal")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the subset sample")
    p.add_argument("--data-dir", help="data directory (default: $PTST_DATA_DIR, then the cache)")
    p.add_argument("--out", required=True, help="output directory (generations/, judgements/, scores/, metrics.json)")
    # Every `ptst judge` option, prefixed: --judge-base-url, --judge-api-model, --judge-model (classifier), ...
    add_judge_options(p, prefix="judge-")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    evals = []
    for e in args.evals:
        data, _, split = e.partition("/") if not e.startswith(("jsonl:", "json:", "csv:")) else (e, "", "")
        evals.append(EvalSpec(data=data, split=split or None, limit=args.limit))
    return EvalConfig(model=args.model, adapter=args.adapter, template=args.template, evals=evals,
                      judges=args.judges or ["keyword"], judge=judge_overrides(args, prefix="judge-"),
                      decoding={"max_new_tokens": args.max_new_tokens}, generate={"batch_size": args.batch_size},
                      data_dir=args.data_dir, seed=args.seed)


def cli(args: argparse.Namespace) -> int:
    path = run(config_from_args(args), args.out)
    doc = read_json(path)
    for label, ev in doc["evals"].items():
        for metric, r in ev["metrics"].items():
            if isinstance(r, dict) and "k" in r and r.get("value") is not None:
                print(f"{label:<16} {metric:<24} {100 * r['value']:5.1f}% [{100 * r['low']:.1f}, "
                      f"{100 * r['high']:.1f}] ({r['k']}/{r['n']})")
        for pair, a in (ev.get("judge_agreement") or {}).items():
            k = a["kappa"]
            kappa = "n/a" if k["value"] is None else f"{k['value']:.3f} [{k['low']:.3f}, {k['high']:.3f}]"
            share = 100 * (a["agreement"]["value"] or 0)
            print(f"{label:<16} {'agree ' + pair.replace('|', ' vs '):<24} {share:5.1f}% of {a['n']}, kappa {kappa}")
    print(f"metrics: {path}")
    return 0


def with_cell(cfg: EvalConfig, **cell: Any) -> EvalConfig:
    return replace(cfg, cell={**cfg.cell, **cell})
