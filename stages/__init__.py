"""The pipeline's stage entry points: `python -m stages.<stage>`, as dvc.yaml runs them."""
