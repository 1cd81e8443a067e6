"""Reading a metric's current value through prometheus_client's public ``collect()``."""

from __future__ import annotations

from typing import Any


def sample(metric: Any, **labels: str) -> float:
    """The value of ``metric``'s sample with these labels (a counter's ``_total``), else 0."""
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0
