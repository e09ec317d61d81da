"""Tuning metrics on human judgments: DreamSim-style LoRA, a residual MLP head on frozen features,
CLPIPS-style LPIPS linear weights. A tuned metric is saved as a folder bundle under
``$LOOKALIKE_HOME/metrics/NAME/`` and is then a metric like any other (:mod:`lookalike.tune.bundles`).
Entry point: :func:`lookalike.tune.trainer.tune`."""
