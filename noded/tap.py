"""``twistd noded``: command-line options and the service they make.

The only noded module that imports the global reactor (inside makeService).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from noded.config import ALIASES, NodeConfig
from noded.settings import twistd_options

Options = twistd_options(
    NodeConfig,
    "NODED",
    ALIASES,
    "config/noded.conf.sample",
    "Run a uploadd storage node: the AMP node protocol, an rsync daemon for "
    "incoming replicas and signed downloads. Settings come from --config, "
    "then NODED_<SECTION>_<KEY>, then these options.",
)


def makeService(options: Any, reactor: Any = None) -> IService:
    from noded.service import NodeService

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    return NodeService(options.config, reactor)
