"""Tuning metrics on human judgments (LoRA hinge loss, CLPIPS-style LPIPS weights)."""
