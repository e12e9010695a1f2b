"""What the alert modules share: how an entity is named in a description, and numbers
written for PromQL and for people."""

from __future__ import annotations

from dashboards.promql import label

# How each kind of entity is named in an alert's description, from its labels; the most
# specific first (an accelerator's series also carry its rack's and its job's labels).
_ENTITY_PHRASES = {
    "feed": f"feed {label('feed')} of rack {label('rack')}",
    "accelerator": f"accelerator {label('accelerator')} (rack {label('rack')})",
    "node": f"server {label('node')}",
    "rack": f"rack {label('rack')}",
    "row": f"row {label('row')}",
    "hall": f"hall {label('hall')}",
    "lineup": f"lineup {label('lineup')} of building {label('building')}",
    "building": f"building {label('building')}",
    "meter": f"meter {label('meter')}",
    "target": f"target {label('target')} of source {label('source')}",
    "source": f"source {label('source')}",
    "training_job": f"training job {label('training_job')}",
}


def entity(labels: tuple[str, ...]) -> str:
    """The description's name for the series' entity: its most specific label."""
    for name, phrase in _ENTITY_PHRASES.items():
        if name in labels:
            return phrase
    return "the site"


def num(value: float) -> str:
    """A number as PromQL reads it, without float noise (1e8, not 100000000.0)."""
    return format(value, ".15g")


def percent(ratio: float) -> str:
    return f"{ratio * 100:.15g} %"


def si(value: float, unit: str) -> str:
    """A value with an SI prefix for people: 100 MW, 2.5 kW."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def sentence(text: str) -> str:
    return text[0].upper() + text[1:]
