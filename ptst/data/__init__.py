"""The data stage: registered data sets and custom files loaded as Examples, with provenance and checks."""

from __future__ import annotations

from ptst.data.catalog import DATASETS, EXTRA_FILES, EvalDefaults, eval_defaults
from ptst.data.contamination import Overlap, find_overlap, normalise_text, remove_overlap
from ptst.data.load import load_dataset, sample_positions
from ptst.data.loaders import arc_prompt, gsm8k_reference, harmbench_input, instruction_input
from ptst.data.sources import data_roots, download_file
from ptst.data.types import KINDS, Dataset, DatasetSpec, FileSpec, Row

__all__ = [
    "DATASETS", "EXTRA_FILES", "KINDS", "Dataset", "DatasetSpec", "EvalDefaults", "FileSpec", "Overlap", "Row",
    "arc_prompt", "data_roots", "download_file", "eval_defaults", "find_overlap", "gsm8k_reference",
    "harmbench_input", "instruction_input", "load_dataset", "normalise_text", "remove_overlap", "sample_positions",
]
