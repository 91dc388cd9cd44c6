"""OpenVINO GenAI systems for bench_generate: the same model exported to OpenVINO IR (fp32 weights, by optimum-intel
in a venv of its own: `make openvino-ir`), decoded greedily by openvino_genai's ContinuousBatchingPipeline on the
CPU in bf16 (`openvino-bf16`: AMX/AVX512-BF16 kernels, a bf16 KV cache) or fp32 (`openvino-fp32`).

Each timed call gets a fresh pipeline (made and warmed up on unrelated token rows before the clock starts), so no
prompt's blocks are cached from an earlier call. Prefix caching is on and, as ptst runs the shared safety prompt
once per batch and `llamacpp-prefix` decodes it once, the first prompt is run alone for one token before the batch:
the other rows then reuse its cached blocks of the shared prefix. Both are inside the timed call.

Greedy, with the benchmark's stop ids; each row's ids are cut after its first stop token, which is kept (ptst counts
the end-of-turn token as generated).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INSTALL_HINT = ("OpenVINO systems need openvino-genai, which is not installed: run `make bench-deps` "
                "(openvino-genai==2026.4.1.0 from PyPI)")
EXPORT_HINT = "export one with `make openvino-ir` (optimum-intel in .venv-openvino; ~1 min)"
# config.json fields that must agree between the IR's source model and the benchmark's HF model
SAME = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "intermediate_size", "vocab_size", "rope_theta")


def require() -> Any:
    """The openvino_genai module, or SystemExit with one line saying how to install it."""
    try:
        import openvino_genai
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None
    return openvino_genai


def check_ir(ir_dir: str | None, model: str, hf_config: dict[str, Any]) -> Path:
    """The exported model's directory, checked to hold an IR of the benchmark's model: the weights' identity that
    `make openvino-ir` records beside it (ptst-model.txt), and the same architecture (one SystemExit line
    otherwise)."""
    if not ir_dir:
        raise SystemExit(f"OpenVINO systems need --openvino DIR, an exported model: {EXPORT_HINT}")
    path = Path(ir_dir)
    if not (path / "openvino_model.xml").is_file() or not (path / "config.json").is_file():
        raise SystemExit(f"--openvino {ir_dir}: no openvino_model.xml and config.json there; {EXPORT_HINT}")
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"--openvino {ir_dir}: unreadable config.json ({e})") from None
    from ptst.models import base_identity

    made = path / "ptst-model.txt"
    want = base_identity(model)
    if not made.is_file() or made.read_text(encoding="utf-8").strip() != want:
        got = made.read_text(encoding="utf-8").strip() if made.is_file() else "no ptst-model.txt"
        raise SystemExit(f"--openvino {ir_dir}: exported from other weights than --model {model} ({got[:40]} vs "
                         f"{want[:40]}); {EXPORT_HINT}")
    diff = [k for k in SAME if cfg.get(k) != hf_config.get(k)]
    if diff:
        what = ", ".join(f"{k} {cfg.get(k)!r} vs {hf_config.get(k)!r}" for k in diff)
        raise SystemExit(f"--openvino {ir_dir}: not the benchmarked model ({what})")
    return path


class OpenVINO:
    """One exported model in one precision ('bf16' or 'fp32'), `threads` CPU threads."""

    def __init__(self, ir_dir: Path, precision: str, threads: int, max_rows: int) -> None:
        self.ov, self.genai = _modules()
        hint = {"bf16": "bf16", "fp32": "f32"}[precision]
        self.props = {"INFERENCE_PRECISION_HINT": hint, "KV_CACHE_PRECISION": hint, "INFERENCE_NUM_THREADS": threads}
        self.dir, self.max_rows = ir_dir, max_rows
        self.version = str(self.genai.__version__)
        self.pipe: Any = None

    def _config(self, max_new: int, stops: set[int]) -> Any:
        cfg = self.genai.GenerationConfig()
        cfg.max_new_tokens, cfg.do_sample, cfg.stop_token_ids = max_new, False, set(stops)
        return cfg

    def _ids(self, rows: list[list[int]]) -> list[Any]:
        import numpy as np

        return [self.ov.Tensor(np.array([r], dtype=np.int64)) for r in rows]

    def prepare(self, n_rows: int, length: int, stops: set[int]) -> None:
        """A fresh pipeline (no cached prompt blocks), warmed up on `n_rows` unrelated rows of about `length`
        tokens so that its kernels are compiled before the timed call."""
        sc = self.genai.SchedulerConfig()
        sc.max_num_seqs, sc.max_num_batched_tokens = max(self.max_rows, n_rows), 8192
        sc.cache_size, sc.enable_prefix_caching, sc.dynamic_split_fuse = 1, True, True  # 1 GB of KV blocks
        self.pipe = None  # the old one's memory first
        self.pipe = self.genai.ContinuousBatchingPipeline(str(self.dir), sc, "CPU", self.props)
        warm = [[1000 + 7 * i + j for j in range(max(8, length - i % 8))] for i in range(n_rows)]
        self.pipe.generate(self._ids(warm), [self._config(4, stops)] * n_rows)

    def generate(self, rows: list[list[int]], max_new: int, stops: set[int]) -> list[list[int]]:
        if self.pipe is None:
            raise RuntimeError("OpenVINO.prepare() first")
        if len(rows) > 1:  # the shared prefix once: the first row alone, one token; the batch reuses its blocks
            self.pipe.generate(self._ids(rows[:1]), [self._config(1, stops)])
        res = self.pipe.generate(self._ids(rows), [self._config(max_new, stops)] * len(rows))
        outs = []
        for r in res:
            ids = [int(t) for t in r.m_generation_ids[0]]
            end = next((i for i, t in enumerate(ids) if t in stops), len(ids) - 1)
            outs.append(ids[: end + 1])
        return outs


def _modules() -> tuple[Any, Any]:
    genai = require()
    import openvino

    return openvino, genai
