"""The CPU as reported beside every number: its strongest matrix instructions, lowered by the caps torch, oneDNN
and MKL obey (how an AMX machine is run as an AVX2-only one)."""

from __future__ import annotations

import pytest

from ptst.runtime import cpu

VARS = tuple(cpu.CAPS)


@pytest.fixture()
def amx(monkeypatch):
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Test CPU", frozenset({"avx2", "avx512f", "avx512_bf16",
                                                                          "amx_bf16"})))
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_kind_is_the_strongest_matrix_set_without_caps(amx):
    assert cpu.kind() == "amx_bf16" and cpu.fast_bf16() and cpu.capped() == []
    assert cpu.describe().endswith(", amx_bf16")


def test_caps_lower_the_kind_and_are_named(amx):
    amx.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu.kind() == "avx2" and not cpu.fast_bf16()  # no bf16 matmuls: training resolves to fp32
    assert cpu.capped() == ["ONEDNN_MAX_CPU_ISA=AVX2"]
    amx.setenv("ATEN_CPU_CAPABILITY", "avx2")
    amx.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    assert cpu.describe().endswith("avx2 (capped: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "
                                   "MKL_ENABLE_INSTRUCTIONS=AVX2)")


def test_a_cap_above_what_the_cpu_has_changes_nothing(amx, monkeypatch):
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Old CPU", frozenset({"avx2"})))
    amx.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    amx.setenv("ATEN_CPU_CAPABILITY", "avx512")
    assert cpu.kind() == "avx2" and cpu.capped() == []


def test_the_bf16_cap_keeps_fast_bf16(amx):
    amx.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # rules out AMX only
    assert cpu.kind() == "avx512_bf16" and cpu.fast_bf16() and cpu.capped() == ["ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16"]


def test_torch_and_mkl_caps_leave_bf16_matmuls_alone(amx, monkeypatch):
    amx.setenv("ATEN_CPU_CAPABILITY", "avx2")  # oneDNN still runs bf16 on AMX: training stays bf16
    amx.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    assert cpu.kind() == "amx_bf16" and cpu.fast_bf16()
    assert cpu.capped() == ["ATEN_CPU_CAPABILITY=avx2", "MKL_ENABLE_INSTRUCTIONS=AVX2"]
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Skylake", frozenset({"avx2", "avx512f"})))
    assert cpu.kind() == "avx2"  # fp32 matmuls (MKL) and kernels (ATEN) capped: an AVX2 machine for fp32
    amx.setenv("ATEN_CPU_CAPABILITY", "default")
    amx.delenv("MKL_ENABLE_INSTRUCTIONS")
    assert cpu.kind() == "other"


def test_an_amx_level_cap_is_no_cap(amx):
    amx.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert cpu.kind() == "amx_bf16" and cpu.capped() == []


def test_device_names_the_cpu_for_cpu_work_and_the_kind_otherwise(amx):
    class Dev:
        type, index = "cpu", None

    assert cpu.device() == cpu.device("cpu") == cpu.device(Dev()) == cpu.describe()
    assert cpu.device("mps") == "mps"  # named by kind: no torch import for a device it cannot describe


def test_device_names_a_gpu_by_torch_and_only_its_kind_when_torch_cannot(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Test GPU 80GB")
    assert cpu.device("cuda") == "cuda: Test GPU 80GB"

    def fail(index=None):
        raise RuntimeError("no driver")

    monkeypatch.setattr(torch.cuda, "get_device_name", fail)
    assert cpu.device("cuda") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cpu.here() == cpu.describe()


def test_the_vector_isa_follows_torchs_own_cap_only(amx, monkeypatch):
    """What ptst's native kernels are built for: the CPU's vector set, lowered by ATEN_CPU_CAPABILITY alone (oneDNN
    and MKL caps concern their own products), never raised by it."""
    amx.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu.vector_isa() == "avx512f"
    amx.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert cpu.vector_isa() == "avx2"
    amx.setenv("ATEN_CPU_CAPABILITY", "default")
    assert cpu.vector_isa() == "other"
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Old CPU", frozenset({"avx2"})))
    amx.setenv("ATEN_CPU_CAPABILITY", "avx512")
    assert cpu.vector_isa() == "avx2"
