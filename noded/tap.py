"""``twistd noded``: command-line options and the service they make.

The only noded module that imports the global reactor (inside makeService);
it goes down from here typed as :class:`noded.reactor.IReactor`.
"""

from __future__ import annotations

from twisted.application.service import IService

from noded.config import ALIASES, NodeConfig
from noded.logs import applied
from noded.reactor import IReactor, checked
from noded.settings import ConfiguredOptions, twistd_options

Options = twistd_options(
    NodeConfig,
    "NODED",
    ALIASES,
    "config/noded.conf.sample",
    "Run a uploadd storage node: the AMP node protocol, an rsync daemon for "
    "incoming replicas and signed downloads. Settings come from --config, "
    "then NODED_<SECTION>_<KEY>, then these options.",
)


def makeService(
    options: ConfiguredOptions, reactor: IReactor | None = None
) -> IService:
    """The node's service tree (see :class:`noded.service.NodeService`); with
    ``[log] format = json``, under the service that has twistd log JSON
    lines (:mod:`noded.logs`)."""
    from noded.service import NodeService

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = checked(global_reactor)
    tree = NodeService(options.config, reactor)
    return applied(options.config.log, options, tree, reactor)
