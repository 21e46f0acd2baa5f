"""``twistd uploadd``: command-line options and the service they make.

The only module that imports the global reactor (and only inside
:func:`makeService`, when twistd has installed it).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from uploadd.config import ALIASES, Config, load_config
from uploadd.settings import ConfigError, given_options, option_table


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the uploadd file server. Settings come from --config, then "
        "UPLOADD_<SECTION>_<KEY> environment variables, then these options."
    )
    optParameters = option_table(
        Config, ALIASES, "INI file shaped like config/uploadd.conf.sample"
    )

    config: Config

    def postOptions(self) -> None:
        given = given_options(self, Config, ALIASES)
        try:
            self.config = load_config(self["config"], dict(os.environ), given)
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


def makeService(options: Options, reactor: Any = None) -> IService:
    from uploadd.service import UploaddService

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    return UploaddService(options.config, reactor)
