"""Typed INI settings: schema from attrs fields, layered file < environment < options.

A configuration is a frozen attrs class whose fields are sections, each section
a frozen attrs class whose fields are declared with :func:`setting`. The same
schema drives the INI reader, the environment reader, the generated twistd
options and the error messages, so a key exists in all four or in none.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import attrs
from twisted.python import usage

T = TypeVar("T")
Parser = Callable[[str], Any]


class ConfigError(Exception):
    """A setting is missing, unknown or malformed; the message names it."""


def setting(default: str, parse: Parser, help: str, form: str) -> Any:
    """Declare one key of a section: its default (as written in a file), parser,
    help and expected form."""
    return attrs.field(
        default=parse(default),
        metadata={"parse": parse, "help": help, "form": form, "text": default},
    )


# -- parsers -----------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'10G', '512M', '64k', '1024' -> bytes (powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    number, unit = int(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


def parse_duration(text: str) -> float:
    """'60', '1.5s', '500ms', '5m', '1h', '7d' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(match.group(1)) * scale[(match.group(2) or "s").lower()]


def parse_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def parse_host(text: str) -> str:
    text = text.strip()
    if text == "localhost":
        return "127.0.0.1"
    return str(ipaddress.ip_address(text))


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError(text)


def parse_text(text: str) -> str:
    return text.strip()


def parse_choice(choices: Sequence[str]) -> Parser:
    """A parser taking one of ``choices`` (any case), as written there."""

    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise ValueError(text)
        return lowered

    return parse


def parse_secret(text: str) -> str:
    """Empty (generate one) or at least 32 characters."""
    text = text.strip()
    if text and len(text) < 32:
        raise ValueError("too short")
    return text


_ENDPOINT = re.compile(r"^[a-z][a-z0-9]*:\S+$")


def parse_endpoint(text: str) -> str:
    """Empty, or a Twisted server endpoint string (``TYPE:ARGUMENTS``, such
    as ``tcp:8080:interface=127.0.0.1`` or ``unix:/run/x.sock``). Its
    arguments are checked when the daemon starts listening on it."""
    text = text.strip()
    if text and not _ENDPOINT.match(text):
        raise ValueError(text)
    return text


#: Connections the kernel queues for accepting (it caps this at somaxconn).
BACKLOG = 1024


def listen_on(endpoint: str, host: str, port: int) -> str:
    """The endpoint string to listen on: ``endpoint``, else TCP on ``host``
    and ``port`` (the shorthand)."""
    if endpoint:
        return endpoint
    # An IPv6 address's colons are escaped in an endpoint string. Twisted's
    # accept queue holds 50 by default: more clients connecting at once wait
    # a second or more for the kernel to retry their SYN.
    interface = host.replace(":", "\\:")
    return f"tcp:{port}:interface={interface}:backlog={BACKLOG}"


def parse_url(schemes: tuple[str, ...]) -> Parser:
    def parse(text: str) -> str:
        text = text.strip()
        if text and not text.startswith(tuple(f"{s}://" for s in schemes)):
            raise ValueError(text)
        return text

    return parse


# -- schema walking ----------------------------------------------------------


@attrs.frozen
class Key:
    """One settable key: where it lives and how it is read."""

    section: str
    name: str
    parse: Parser
    help: str
    form: str
    default: str

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}"

    def option(self) -> str:
        return f"{self.section}-{self.name}".replace("_", "-")

    def environment(self, prefix: str) -> str:
        return f"{prefix}_{self.section}_{self.name}".upper()


def keys(root: type[Any]) -> Iterator[Key]:
    """Every key of a configuration class, section by section."""
    for section in attrs.fields(attrs.resolve_types(root)):
        for field in attrs.fields(attrs.resolve_types(section.type)):
            yield Key(
                section=section.name,
                name=field.name,
                parse=field.metadata["parse"],
                help=field.metadata["help"],
                form=field.metadata["form"],
                default=field.metadata["text"],
            )


def _parse(key: Key, raw: str, where: str) -> Any:
    try:
        return key.parse(raw)
    except (ValueError, TypeError):
        # A secret's value never appears in a message or a log.
        shown = "a value too short" if key.parse is parse_secret else repr(raw)
        raise ConfigError(
            f"{key.label} (from {where}): expected {key.form}, got {shown}"
        ) from None


def config_file(
    prefix: str,
    path: str | None,
    environ: Mapping[str, str] | None,
    search: Sequence[Path] = (),
) -> str | None:
    """The INI file to read: ``path`` (``--config``), else ``<PREFIX>_CONFIG``
    from the environment, else the first of ``search`` that exists; None when
    there is none."""
    if path is not None:
        return path
    if environ and environ.get(f"{prefix}_CONFIG"):
        return environ[f"{prefix}_CONFIG"]
    return next((str(found) for found in search if found.is_file()), None)


def load(
    root: type[T],
    prefix: str,
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    options: Mapping[tuple[str, str], str] | None = None,
    aliases: Mapping[str, tuple[str, str]] | None = None,
    search: Sequence[Path] = (),
    sources: dict[tuple[str, str], str] | None = None,
) -> T:
    """Build ``root`` from defaults < INI file < environment < options.

    The file is the one :func:`config_file` picks from ``path``,
    ``<PREFIX>_CONFIG`` and ``search``. ``aliases`` maps short names
    (``max_upload_size``) to (section, key); the environment accepts
    ``<PREFIX>_<ALIAS>`` beside the full name. ``sources``, when given, is
    filled with where each key that is not at its default was set.
    """
    path = config_file(prefix, path, environ, search)
    all_keys = {(k.section, k.name): k for k in keys(root)}
    raw: dict[tuple[str, str], tuple[str, str]] = {}

    if path is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as error:
            raise ConfigError(
                f"cannot read config file {path}: {error.strerror}"
            ) from None
        except configparser.Error as error:
            raise ConfigError(f"config file {path} is not INI: {error}") from None
        for section in parser.sections():
            if not any(s == section for s, _ in all_keys):
                raise ConfigError(
                    f"unknown section [{section}] in {path}; known sections: "
                    + ", ".join(sorted({s for s, _ in all_keys}))
                )
            for name, value in parser.items(section):
                if (section, name) not in all_keys:
                    known = sorted(n for s, n in all_keys if s == section)
                    raise ConfigError(
                        f"unknown key [{section}] {name} in {path}; "
                        f"[{section}] takes: {', '.join(known)}"
                    )
                raw[(section, name)] = (value, path)

    by_env = {k.environment(prefix): k for k in all_keys.values()}
    for alias, target in (aliases or {}).items():
        by_env.setdefault(f"{prefix}_{alias}".upper(), all_keys[target])
    for variable, value in sorted((environ or {}).items()):
        if not variable.startswith(prefix + "_") or variable == f"{prefix}_CONFIG":
            continue
        if variable not in by_env:
            raise ConfigError(
                f"unknown environment variable {variable}; settings are named "
                f"{prefix}_<SECTION>_<KEY>, for example {prefix}_HTTP_PORT"
            )
        key = by_env[variable]
        raw[(key.section, key.name)] = (value, variable)

    for (section, name), given in (options or {}).items():
        raw[(section, name)] = (given, f"--{all_keys[(section, name)].option()}")

    sections: dict[str, dict[str, Any]] = {}
    if sources is not None:
        sources.update({key: where for key, (_, where) in raw.items()})
    for (section, name), (value, where) in raw.items():
        sections.setdefault(section, {})[name] = _parse(
            all_keys[(section, name)], value, where
        )
    built = {
        field.name: field.type(**sections.get(field.name, {}))
        for field in attrs.fields(attrs.resolve_types(cast(Any, root)))
    }
    return root(**built)


def render_sample(root: type[Any], header: str) -> str:
    """An INI text listing every key with its help and default, commented out."""
    lines = [header.rstrip(), ""]
    section = None
    for key in keys(root):
        if key.section != section:
            section = key.section
            lines += ["", f"[{section}]"]
        lines += [f"# {key.help} ({key.form})", f"# {key.name} = {key.default}"]
    return "\n".join(lines).strip() + "\n"


def option_table(
    root: type[Any], aliases: Mapping[str, tuple[str, str]], config_help: str
) -> list[list[Any]]:
    """twistd optParameters: --config, --<section>-<key> for every key, and
    the short aliases."""
    table: list[list[Any]] = [["config", "c", None, config_help]]
    for key in keys(root):
        table.append([key.option(), None, None, f"{key.label}: {key.help}"])
    for alias, (section, name) in aliases.items():
        short = alias.replace("_", "-")
        table.append(
            [short, None, None, f"short for --{section}-{name.replace('_', '-')}"]
        )
    return table


def given_options(
    options: Mapping[str, Any], root: type[Any], aliases: Mapping[str, tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The settings a parsed twistd Options object was given, by (section, key)."""
    given: dict[tuple[str, str], str] = {}
    for key in keys(root):
        if options.get(key.option()) is not None:
            given[(key.section, key.name)] = options[key.option()]
    for alias, where in aliases.items():
        if options.get(alias.replace("_", "-")) is not None:
            given[where] = options[alias.replace("_", "-")]
    return given


class ConfiguredOptions(usage.Options):
    """twistd options that end up holding the loaded configuration."""

    config: Any
    longdesc = ""


def twistd_options(
    root: type[Any],
    prefix: str,
    aliases: Mapping[str, tuple[str, str]],
    sample_path: str,
    longdesc: str,
    *,
    synopsis: str = "[options]",
    parameters: Sequence[list[Any]] = (),
    commands: Sequence[list[Any]] = (),
    check: Callable[[Any], None] = lambda options: None,
    search: Callable[[Mapping[str, str]], Sequence[Path]] = lambda environ: (),
) -> type[ConfiguredOptions]:
    """A twistd Options class for ``root``: ``--config`` plus one option per
    key; after parsing, ``options.config`` holds the loaded configuration
    (file < environment < options), or a UsageError names what was wrong.
    ``parameters`` are more options, ``commands`` subcommands, and
    ``check(options)`` raises UsageError for what the configuration alone
    cannot judge; ``search(environ)`` lists the files looked for when neither
    --config nor ``<PREFIX>_CONFIG`` names one."""

    description, usage_line = longdesc, synopsis

    class Options(ConfiguredOptions):
        synopsis = usage_line
        longdesc = description
        optParameters: ClassVar[list[Any]] = [
            *parameters,
            *option_table(root, aliases, f"INI file shaped like {sample_path}"),
        ]
        subCommands: ClassVar[list[Any]] = list(commands)

        def postOptions(self) -> None:
            given = given_options(self, root, aliases)
            environ = dict(os.environ)
            try:
                self.config = load(
                    root,
                    prefix,
                    self["config"],
                    environ,
                    given,
                    aliases,
                    search(environ),
                )
            except ConfigError as error:
                raise usage.UsageError(str(error)) from None
            check(self)

    return Options
