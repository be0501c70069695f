"""Reading the Prometheus text ``/metrics`` answers."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    wanted = (labels or {}).items()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and wanted <= found.labels.items():
                total += found.value
    return total
