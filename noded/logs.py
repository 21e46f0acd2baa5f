"""How both daemons write their log: ``[log] format = text | json``.

``text`` is twistd's own: a line per event, as people read it. ``json`` is
for machines (Loki, Elasticsearch, jq): one JSON object per line, its keys
flat so a query names them directly (``jq 'select(.level == "warn")'``,
LogQL ``| json | node_id = "n1"``)::

    {"time": "2026-05-04T10:00:02.250113Z", "level": "warn",
     "namespace": "uploadd.cluster.pinger",
     "message": "node n1 DOWN after 3 failed pings: connection refused",
     "node_id": "n1", "count": 3, "error": "connection refused"}

- ``time``: RFC 3339 in UTC with microseconds; ``level``: debug, info,
  warn, error or critical; ``namespace``: the logging module (or the Twisted
  part); ``message``: the event's text, formatted.
- then the event's own fields, as given to the logger (``node_id=...``);
  what JSON cannot hold is written as its text. A field named like one of
  the keys above keeps its value under the name with a ``_`` added.
- ``system`` for Twisted's older log calls that name one (a connection).
- for a failure, ``exception`` (``builtins.ValueError: why``) and
  ``traceback``, the whole traceback as one string.

Twisted's own ``jsonFileLogObserver`` is not used: its objects keep the
unformatted ``log_format``, the level as an object, a failure as nested
frames and a record separator before each line, none of which a log
shipper's JSON parser or jq reads as it is.

twistd makes the log observer after the plugin's service, and asks the
application for one first: :func:`applied` wraps the daemon's tree in a
service that gives the application the JSON observer, writing where twistd
would have written its text (``--logfile``, standard output with
``--nodaemon``, ``twistd.log``; SIGUSR1 reopens the file). With
``--syslog`` or ``--logger``, twistd's choice stands and the lines are text.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from types import FrameType
from typing import IO, Any, cast

import attrs
from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import FileLogObserver, ILogObserver, LogEvent, Logger, formatEvent
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from twisted.python.reflect import qual

from noded.settings import parse_choice, setting

log = Logger()

FORMATS = ("text", "json")


@attrs.frozen
class LogSection:
    format: str = setting(
        "text",
        parse_choice(FORMATS),
        "text: twistd's lines; json: one JSON object per line with time, level,"
        " namespace, message, the event's fields, and a traceback for failures",
        "text or json",
    )


#: The keys every line has (and a failure's); an event field of the same
#: name is written with a "_" after it.
OWN_KEYS = ("time", "level", "namespace", "message", "system")
FAILURE_KEYS = ("exception", "traceback")
#: What twisted.python.log's compatibility layer adds to an event.
LEGACY_KEYS = frozenset(
    ("message", "time", "system", "isError", "format", "failure", "why", "printed")
)


def _plain(value: object) -> object:
    """A value json cannot write, as something it can."""
    if isinstance(value, Failure):
        return value.getErrorMessage()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)  # a path, an address, any object: its text


def _failure(event: LogEvent, legacy: bool) -> Failure | None:
    found = event.get("log_failure")
    if found is None and legacy:
        found = event.get("failure")
    return found if isinstance(found, Failure) else None


def as_json(event: LogEvent) -> dict[str, Any]:
    """The flat object a JSON log line holds for ``event``."""
    # An older log.msg/log.err event, or one a legacy observer saw first,
    # carries the compatibility keys; their content is in the log_ keys.
    legacy = isinstance(event.get("message"), tuple)
    failure = _failure(event, legacy)
    if legacy and failure is not None and "log_failure" not in event:
        # log.err's text is its "why" followed by the traceback.
        message = str(event.get("why") or "Unhandled Error")
    else:
        message = formatEvent(event)
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": _time(event.get("log_time")),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", "log_legacy"),
        "message": message,
    }
    system = event.get("log_system")
    if system not in (None, "-"):
        record["system"] = system
    taken = {*OWN_KEYS, *FAILURE_KEYS}
    for key, value in event.items():
        if key.startswith("log_") or (legacy and key in LEGACY_KEYS):
            continue
        while key in taken:
            key += "_"
        taken.add(key)
        record[key] = value
    if failure is not None:
        kind = qual(failure.type or type(failure.value))
        record["exception"] = f"{kind}: {failure.getErrorMessage()}"
        record["traceback"] = failure.getTraceback()
    return record


def _time(when: object) -> str:
    seconds = when if isinstance(when, int | float) else 0.0
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")


def json_line(event: LogEvent) -> str:
    """``event`` as one line of JSON, ending in a newline."""
    record = as_json(event)
    try:
        text = json.dumps(record, default=_plain, ensure_ascii=False)
    except (TypeError, ValueError):
        # A field json cannot walk (a cycle, a key that is not a string).
        safe = {k: v if k in OWN_KEYS else repr(v) for k, v in record.items()}
        text = json.dumps(safe, ensure_ascii=False)
    return text + "\n"


def json_observer(out: IO[Any]) -> ILogObserver:
    """An observer writing each event to ``out`` as a JSON line."""
    return FileLogObserver(out, json_line)


# -- where twistd would write ------------------------------------------------


def _twistd_options(options: usage.Options) -> Mapping[str, Any]:
    """twistd's own options (--logfile, --nodaemon, --syslog), above a
    plugin's (and a subcommand's) options; empty when run without twistd."""
    above: usage.Options | None = getattr(options, "parent", None)
    if above is None:
        return {}
    while (higher := getattr(above, "parent", None)) is not None:
        above = higher
    return above


def log_file(twistd: Mapping[str, Any], reactor: IReactorFromThreads) -> IO[Any] | None:
    """Where twistd would write its text log, as twistd decides it on Unix;
    None where twistd's choice must stand (syslog, a --logger of its own)."""
    if twistd.get("syslog") or twistd.get("logger"):
        return None
    name = twistd.get("logfile") or ""
    if name == "-" or (not name and twistd.get("nodaemon", True)):
        return sys.stdout
    opened: LogFile = LogFile.fromFullPath(name or "twistd.log")

    def reopen(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(opened.rotate)

    # As twistd does: SIGUSR1 rotates the file, unless someone handles it.
    if not signal.getsignal(signal.SIGUSR1):
        signal.signal(signal.SIGUSR1, reopen)
    return cast("IO[Any]", opened)


class JsonLogged(MultiService):
    """The daemon's tree, under a service that gives twistd's application
    the JSON log observer when twistd adds it there."""

    def __init__(
        self, tree: IService, twistd: Mapping[str, Any], reactor: IReactorFromThreads
    ) -> None:
        super().__init__()
        self.tree = tree
        self._twistd = twistd
        self._reactor = reactor
        tree.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized):
            out = log_file(self._twistd, self._reactor)
            if out is None:
                log.warn("[log] format = json does not apply with --syslog or --logger")
            else:
                parent.setComponent(ILogObserver, json_observer(out))
        super().setServiceParent(parent)


def applied(
    section: LogSection,
    options: usage.Options,
    tree: IService,
    reactor: IReactorFromThreads,
) -> IService:
    """``tree`` as twistd should get it for ``[log] format`` (``options``:
    the plugin's, below twistd's own)."""
    if section.format == "text":
        return tree
    return JsonLogged(tree, _twistd_options(options), reactor)
