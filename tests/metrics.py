"""Reading Prometheus's text format in tests: a sample's value by its name
and labels, as a scraper would see it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly ``labels`` in ``text``; None if the
    scrape has no such sample."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def labelled(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample called ``name`` in ``text``: its labels and value."""
    return {
        frozenset(sample.labels.items()): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def families(text: str) -> set[str]:
    """The names of the families ``text`` declares (counters without _total)."""
    return {family.name for family in text_string_to_metric_families(text)}
