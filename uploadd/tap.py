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
from uploadd.settings import ConfigError, keys


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def _option_table() -> list[list[Any]]:
    table: list[list[Any]] = [
        ["config", "c", None, "INI file shaped like config/uploadd.conf.sample"]
    ]
    for key in keys(Config):
        table.append([key.option(), None, None, f"{key.label}: {key.help}"])
    for alias, (section, name) in ALIASES.items():
        table.append(
            [_dashed(alias), None, None, f"short for --{section}-{_dashed(name)}"]
        )
    return table


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the uploadd file server. Settings come from --config, then "
        "UPLOADD_<SECTION>_<KEY> environment variables, then these options."
    )
    optParameters = _option_table()

    config: Config

    def postOptions(self) -> None:
        given: dict[tuple[str, str], str] = {}
        for key in keys(Config):
            if self[key.option()] is not None:
                given[(key.section, key.name)] = self[key.option()]
        for alias, where in ALIASES.items():
            if self[_dashed(alias)] is not None:
                given[where] = self[_dashed(alias)]
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
