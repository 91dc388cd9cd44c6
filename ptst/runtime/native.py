"""ptst's fused CPU kernels (`native.c`, `native_train.c`, `native_softmax.c`, sharing `native.h`): built once
into one library with the machine's C compiler, loaded with ctypes.

The fast engine's decoding step runs ~40 small eager operations a layer besides its linear layers (norms, rotary
embedding, attention's products, softmax, casts): on SmolLM2-135M at batch 48 in bf16 they took more time than the
linear layers themselves, and a third of the fp32 step (docs/performance.md). `native.c` does them in three kernels a
layer, for bf16 models, and for fp32 models where the build has its AVX-512 path (`wide`). It is built at first
use (`gcc -O3 -march=native -fopenmp`, about a second) into `$PTST_CACHE_DIR/kernels/`, under a name that hashes
the sources, the compiler and this CPU's model and flags, so a cache shared between machines never loads another
CPU's build; the build is written to a temporary file and renamed, so concurrent first uses do not collide.
Training's kernels (`native_train.c`: LoRA dropout, RMSNorm, the SiLU product, the rotary embedding;
`native_softmax.c`: the LM head's cross-entropy, attention's causal softmax) run forward and backward passes for
ptst.train and ptst.runtime.row_attention.

Where no C compiler works, or `PTST_NATIVE=0`, `builds()` and `available()` are False, `why()` says why, and the
fast engine runs its eager step. The two can give different answers (different summation orders; in fp32 only at a
near tie), so a generations file's key says which ran (`numerics`, ptst.generate.key, from `builds()`, which needs
no torch). The eager fp32 engine's answers are transformers' `generate`'s, token for token.

Loaded after torch, the library shares torch's OpenMP runtime (the process has one `libgomp.so.1`)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.models import cache_dir
from ptst.runtime import cpu

SOURCES = tuple(Path(__file__).with_name(n) for n in ("native.c", "native_train.c", "native_softmax.c"))  # one library
HEADER = Path(__file__).with_name("native.h")
VERSION = 8  # native.c's ptst_native_version: the kernels' interface
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11")
# The build targets `cpu.vector_isa()`: the CPU's own, lowered by torch's cap on its kernels (ATEN_CPU_CAPABILITY:
# `make quickstart-avx2` emulates an AVX2-only CPU), so the emulation does not run AVX-512 here
ISA_FLAGS = {"avx512f": (), "avx2": ("-mno-avx512f",), "other": ("-mno-avx512f", "-mno-avx2")}
_P, _I, _F, _B = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
_SIGNATURES = {
    "ptst_decode_attention": [_P, _I, _P, _P, _P, _P, _I, _I, _I, _P, _P, _I, _P, _I, _P, _I, _I, _I, _I, _I, _F, _P,
                              _B],
    "ptst_prefill_attention": [_P, _I, _P, _P, _P, _P, _I, _P, _I, _P, _P, _I, _P, _I, _I, _I, _I, _I, _F, _P, _B],
    "ptst_head_refine": [_P, _I, _I, _P, _I, _P, _P, _F, _F, _P],
    "ptst_add_rms": [_P, _P, _P, _F, _I, _I, _P, _B],
    "ptst_silu_mul": [_P, _I, _I, _P, _B],
    "ptst_dropout": [_P, _P, _I, ctypes.c_uint32, _F, ctypes.c_uint64, _B],
    "ptst_rms_forward": [_P, _P, _F, _I, _I, _P, _P, _B],
    "ptst_rms_backward": [_P, _P, _P, _P, _I, _I, _P, _B],
    "ptst_silu_forward": [_P, _P, _I, _P, _B],
    "ptst_silu_backward": [_P, _P, _P, _I, _P, _P, _B],
    "ptst_xent": [_P, _I, _I, _P, _P, _B, _B],
    "ptst_causal_softmax": [_P, _I, _I, _I, _F, _B],
    "ptst_causal_softmax_backward": [_P, _P, _I, _I, _I, _F, _B],
    "ptst_rope": [_P, _I, _I, _I, _P, _I, _I, _I, _P, _P, _I, _I, _I, _I, _I, _B, _B],
}


def _cpu_signature() -> str:
    """The CPU's model name and feature flags: a build made with -march=native runs only where both match."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    pick = [line for line in info if line.startswith(("model name", "flags", "Features"))][:2]
    return "\n".join(pick) or platform.machine()


def _compiler() -> str | None:
    # gcc first: its -fopenmp binds to libgomp, the OpenMP runtime torch's wheels load (clang's libomp would be a
    # second thread pool beside torch's)
    for cc in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def build(out_dir: Path | None = None, extra: tuple[str, ...] = ()) -> Path:
    """Compile `native.c` (if not already built for this source, compiler, flags and CPU) and return the library's
    path. `extra`: more compiler flags (the tests build the portable path with `-mno-avx512f`). Raises RuntimeError
    with the compiler's first error line where it fails."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (gcc, cc or clang; or set CC)")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"{cc} --version failed: {e}") from e
    flags = (*FLAGS, *ISA_FLAGS[cpu.vector_isa()], *extra)
    src = b"\0".join(f.read_bytes() for f in (HEADER, *SOURCES))
    tag = hashlib.sha256(b"\0".join([src, version.encode(), " ".join(flags).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    folder = out_dir or cache_dir() / "kernels"
    lib = folder / f"ptst-native-{tag}.so"
    if lib.exists():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=lib.name, suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run([cc, *flags, "-o", tmp, *map(str, SOURCES), "-lm"], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr.strip()[:200])
            raise RuntimeError(f"{cc} could not build {' '.join(f.name for f in SOURCES)}: {first}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o755 & ~umask)  # mkstemp's 0600 would keep a shared cache's build from other users
        os.replace(tmp, lib)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return lib


def load(path: Path) -> Any:
    """The library at `path` with its functions' argument types set (torch must be imported first)."""
    import torch  # noqa: F401 - torch's libgomp must be the one the library binds to

    lib = ctypes.CDLL(str(path))
    for name, args in _SIGNATURES.items():
        getattr(lib, name).argtypes = args
    if lib.ptst_native_version() != VERSION:
        raise RuntimeError(f"{path.name}: unexpected kernel version")
    return lib


@cache
def _built() -> tuple[Path | None, str]:
    """The library's path, or None and why (built once a process; torch not imported, so keys stay cheap)."""
    if os.environ.get("PTST_NATIVE", "1") == "0":
        return None, "PTST_NATIVE=0"
    try:
        return build(), ""
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        return None, str(e).splitlines()[0] if str(e) else type(e).__name__


@cache
def _state() -> Any:
    path = _built()[0]
    if path is None:
        return None
    try:
        return load(path)
    except (OSError, RuntimeError) as e:  # built but not loadable: the keys (`builds`) would name the wrong engine
        raise PtstError(f"ptst's fused kernels built ({path.name}) but did not load: {e}; set PTST_NATIVE=0 to run "
                        "without them") from None


def reset() -> None:
    """Forget the build and the loaded library's state (tests that change PTST_NATIVE or the compiler)."""
    _built.cache_clear()
    _state.cache_clear()


def builds() -> bool:
    """Whether the kernels build here (or are built): what the generations keys say (`ptst.generate.key`), without
    importing torch. Where they build they also load, or `kernels` raises."""
    return _built()[0] is not None


def wide() -> bool:
    """Whether the build has the AVX-512 path (the CPU has AVX-512F and torch is not capped below it)."""
    return cpu.vector_isa() == "avx512f"


def runs(dtype: str) -> bool:
    """Whether a model of `dtype` ('bfloat16', 'float32') runs on the kernels here: the one decision the fast
    engine (`FastLM`) and the generations keys (`numerics`) both take. bf16 wherever they build; fp32 only with
    their AVX-512 path: on AVX2 the portable path measured no faster than the eager fp32 step (245 against 244
    tokens/s on the capped Xeon), so fp32 keeps the eager engine, and `generate`'s answers, there."""
    return dtype in ("bfloat16", "float32") and builds() and (dtype == "bfloat16" or wide())


def kernels() -> Any:
    """The loaded library, or None where it does not build (see `why`)."""
    return _state()


def takes(*xs: Any) -> bool:
    """Whether the kernels take these tensors: CPU tensors of one dtype, bf16 or fp32, where the kernels build."""
    import torch

    return all(x.device.type == "cpu" and x.dtype == xs[0].dtype for x in xs) and \
        xs[0].dtype in (torch.bfloat16, torch.float32) and available()


def available() -> bool:
    return kernels() is not None


def why() -> str:
    """Why the kernels are unavailable ('' when they build)."""
    return _built()[1]
