"""GenerateConfig lives in `ptst.specs.generate` (below the stages); this name is kept for callers' imports."""

from ptst.specs.generate import GenerateConfig

__all__ = ["GenerateConfig"]
