"""The run layer, below every stage: where a run directory keeps each stage's files (`layout`) and what state
a stage's output is in (`state`: new, done, partial or different), so that the stages, the grid, `--dry-run` and
`ptst status` read one answer; and metrics.json's schema (`results`), shared by the evaluation stage that writes
it and the report that reads it. Nothing heavy is imported here."""
