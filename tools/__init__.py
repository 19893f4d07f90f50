"""Project tooling that is not a stage: code deps of dvc.yaml, the reads check of CI."""
