"""Metrics: the registry (:func:`list_metrics`, :func:`create_metric`), configs, backbones, weights.

Importing this package is cheap (no numpy or torch): a metric's network is built, and torch
imported, only by :func:`create_metric`.
"""

from __future__ import annotations

from lookalike.embed.factory import create_metric
from lookalike.embed.registry import get_config, list_metrics

__all__ = ["create_metric", "get_config", "list_metrics"]
