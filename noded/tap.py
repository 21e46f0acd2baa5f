"""``twistd noded``: command-line options and the service they make.

The only noded module that imports the global reactor (inside makeService).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from noded.config import ALIASES, NodeConfig, load_config
from uploadd.settings import ConfigError, given_options, option_table


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a uploadd storage node: the AMP node protocol, an rsync daemon "
        "for incoming replicas and signed downloads. Settings come from "
        "--config, then NODED_<SECTION>_<KEY>, then these options."
    )
    optParameters = option_table(
        NodeConfig, ALIASES, "INI file shaped like config/noded.conf.sample"
    )

    config: NodeConfig

    def postOptions(self) -> None:
        given = given_options(self, NodeConfig, ALIASES)
        try:
            self.config = load_config(self["config"], dict(os.environ), given)
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


def makeService(options: Options, reactor: Any = None) -> IService:
    from noded.service import NodeService

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    return NodeService(options.config, reactor)
