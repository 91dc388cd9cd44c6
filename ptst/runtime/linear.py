"""A linear layer with its weight packed once for the CPU's matrix kernels (the fast engine's, ptst.runtime.fast)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name


class Linear:
    """`F.linear(x, weight, bias)` with the weight packed once for the CPU's matrix kernels: oneDNN's layout for
    bf16/fp16 (AMX/AVX512-BF16 tiles), MKL's packed sgemm for fp32. Both give F.linear's exact result (the same
    kernels without repacking the weight at every call, which a decoding step at batch 48 spends ~40% of its
    matrix time on); where packing is unavailable it is plain F.linear."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor | None], batch_hint: int) -> None:
        self.weight = weights[0] if len(weights) == 1 else torch.cat(weights)
        self.bias = None if all(b is None for b in biases) else torch.cat(
            [b if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases, strict=True)])
        self.packed: torch.Tensor | None = None
        self.kind = "plain"
        try:
            if self.weight.dtype in (torch.bfloat16, torch.float16) and torch.backends.mkldnn.is_available():
                self.packed, self.kind = torch.ops.mkldnn._reorder_linear_weight(self.weight, batch_hint), "onednn"
            elif self.weight.dtype == torch.float32 and torch.backends.mkl.is_available():
                self.packed, self.kind = torch.ops.mkl._mkl_reorder_linear_weight(self.weight, batch_hint), "mkl"
        except (RuntimeError, AttributeError):  # an older torch or a build without the kernel: unpacked
            self.packed, self.kind = None, "plain"
        self.hint = batch_hint

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        if self.kind == "mkl":
            return torch.ops.mkl._mkl_linear(x, self.packed, self.weight, self.bias, self.hint)
        return F.linear(x, self.weight, self.bias)
