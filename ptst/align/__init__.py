"""The alignment stage (`ptst align`): safety-tune an unaligned small model so the PTST effect can be studied.

`data` (the decontaminated refusals and benign answers, the TrainConfig), `key` (the key and the artifact state),
`runner` (`run(spec, model, out_dir)`: train, merge, measure before and after), `cli` (`ptst align`)."""

from ptst.align.data import build_parts, train_config
from ptst.align.key import MEASURE_JUDGES, MEASURE_TEMPLATES, MEASURE_TOKENS, AlignArtifact, align_key
from ptst.align.runner import measure, merge, run

__all__ = ["MEASURE_JUDGES", "MEASURE_TEMPLATES", "MEASURE_TOKENS", "AlignArtifact", "align_key", "build_parts",
           "measure", "merge", "run", "train_config"]
