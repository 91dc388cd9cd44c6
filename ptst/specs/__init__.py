"""Every stage's config as typed frozen dataclasses, below the stages that run them and the grid that nests them:
`decoding` (Decoding), `train` (TrainConfig, LoraConfig, MixSpec), `generate` (GenerateConfig), `judge`
(JudgeConfig), `eval` (EvalSpec, EvalConfig), `align` (AlignSpec). A spec module imports no stage, so a stage,
the grid and the report can all read the same types; YAML reaches them through one coercing loader
(`ptst.config`). Nothing heavy is imported here."""
