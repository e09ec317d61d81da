"""Network builders, one module per family. Each exposes ``build(config, trainable=False) -> nn.Module``
(DiffSim's ``build(config, device, trainable=False)``) taking ``(N, 3, S, S)`` floats in [0, 1] and
returning ``(N, dim)`` features.

``trainable=False`` (what :func:`lookalike.create_metric` uses): eval mode, no parameter requires
grad, LoRA adapters merged. ``trainable=True``: train mode with gradients on the parameters that the
family tunes (see each builder); :func:`lookalike.embed.factory.build_network` is the entry point.
"""
