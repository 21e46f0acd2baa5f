"""``twistd uploadd``: command-line options and the service they make.

The only module that imports the global reactor (and only inside
:func:`makeService`, when twistd has installed it).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from uploadd.config import ALIASES, Config
from uploadd.settings import twistd_options

Options = twistd_options(
    Config,
    "UPLOADD",
    ALIASES,
    "config/uploadd.conf.sample",
    "Run the uploadd file server. Settings come from --config, then "
    "UPLOADD_<SECTION>_<KEY> environment variables, then these options.",
)


def makeService(options: Any, reactor: Any = None) -> IService:
    from uploadd.service import UploaddService

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    return UploaddService(options.config, reactor)
