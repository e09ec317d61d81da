"""Network builders, one module per family. Each exposes ``build(config) -> nn.Module`` taking
``(N, 3, S, S)`` floats in [0, 1] and returning ``(N, dim)`` features."""
