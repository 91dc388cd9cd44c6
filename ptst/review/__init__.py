"""Human review of a run's own answers: a blinded stratified sample (`sample`), labels from a page or a file
(`labels`), each judge's error measured on them and rates corrected for it (`measure`), the labelling page
(`server`) and `ptst review` (`cli`)."""
