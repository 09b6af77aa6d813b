"""The batch pipeline: prepare → train → evaluate, driven by params.yaml.

- `params`: the typed parameters (`params.yaml`) and the workspace of inputs and outputs.
- `dataset`: the source data, split into stable partitions; a run takes a share of them.
- `stages`: the three stages; DVC runs each as `python -m <package> <stage>` (dvc.yaml).
- `gate`: the metric checks between steps and before registration or promotion.
- `telemetry`: a span per stage and Prometheus metrics pushed to a Pushgateway.
- `cli`: `python -m <package>` runs the whole batch, as the Kubernetes Job does.
"""
