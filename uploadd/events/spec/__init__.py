"""The AMQP 0-9-1 specification txamqp needs, shipped as package data."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import txamqp.spec


@cache
def amqp_spec() -> Any:
    """txamqp's parsed AMQP 0-9-1 spec (RabbitMQ's edition, with confirms)."""
    path = resources.files(__name__).joinpath("amqp0-9-1.xml")
    with resources.as_file(path) as real:
        return txamqp.spec.load(str(real))
