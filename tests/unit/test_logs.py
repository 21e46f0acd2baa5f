"""[log] format = json: one flat JSON object per event, and twistd given the
observer that writes them where it would have written its text."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import Application, IServiceCollection, Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import ILogObserver, Logger, LogPublisher
from twisted.logger._legacy import LegacyLogObserverWrapper, publishToNewObserver
from twisted.python import log as legacy_log
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from noded.logs import applied, json_observer
from noded.settings import ConfiguredOptions
from uploadd.tap import Options as UploaddOptions


def logged(emit: Callable[[Logger], object]) -> list[dict[str, Any]]:
    """The JSON objects written for what ``emit`` logs; each line must be one."""
    out = io.StringIO()
    emit(Logger(namespace="uploadd.test", observer=json_observer(out)))
    lines = out.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_an_event_is_one_flat_json_line() -> None:
    """time (RFC 3339, UTC), level, namespace and the formatted message come
    first, then the event's own fields with their JSON types."""
    [record] = logged(
        lambda log: log.warn(
            "stored {file_id} ({size} bytes)", file_id="f1", size=3, done=True
        )
    )
    assert record.pop("time").endswith("Z")
    assert record == {
        "level": "warn",
        "namespace": "uploadd.test",
        "message": "stored f1 (3 bytes)",
        "file_id": "f1",
        "size": 3,
        "done": True,
    }


def test_the_time_is_the_event_time_in_utc_with_microseconds() -> None:
    """A log shipper reads the event's own time, not its arrival."""
    out = io.StringIO()
    json_observer(out)({"log_time": 1.25, "log_format": "x", "log_level": None})
    record = json.loads(out.getvalue())
    assert record["time"] == "1970-01-01T00:00:01.250000Z"
    assert datetime.fromisoformat(record["time"]).timestamp() == 1.25


def test_a_failure_has_its_exception_and_traceback_as_strings() -> None:
    """log.failure gives ``exception`` (type and message) and ``traceback``,
    the whole traceback in one string; the message stays the logged one."""

    def fail(log: Logger) -> None:
        try:
            raise ValueError("disk on fire")
        except ValueError:
            log.failure("copy of {file_id} failed", file_id="f1")

    [record] = logged(fail)
    assert record["level"] == "critical"
    assert record["message"] == "copy of f1 failed"
    assert record["file_id"] == "f1"
    assert record["exception"] == "builtins.ValueError: disk on fire"
    assert record["traceback"].startswith("Traceback")
    assert "ValueError: disk on fire" in record["traceback"]
    assert "in fail" in record["traceback"]


def test_a_field_named_like_a_key_keeps_its_value_under_another_name() -> None:
    """A field ``message`` does not replace the line's message: it is
    written as ``message_``."""
    [record] = logged(lambda log: log.info("said {message}", message="hi", time=3))
    assert record["message"] == "said hi"
    assert record["message_"] == "hi"
    assert record["time_"] == 3


def test_values_json_cannot_hold_are_written_as_text() -> None:
    """A path, bytes, a set, a Failure or any object become text; a field
    json cannot walk at all (a cycle) is written as its repr."""

    class Thing:
        def __str__(self) -> str:
            return "a thing"

    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    [plain] = logged(
        lambda log: log.info(
            "x",
            path=Path("/srv/x"),
            raw=b"\xffab",
            tags={"b", "a"},
            reason=Failure(KeyError("k")),
            thing=Thing(),
        )
    )
    assert plain["path"] == "/srv/x"
    assert plain["raw"] == "\\xffab"
    assert plain["tags"] == ["a", "b"]
    assert plain["reason"] == "'k'"
    assert plain["thing"] == "a thing"
    [cyclic] = logged(lambda log: log.info("c", loop=cycle))
    assert cyclic["message"] == "c"
    assert cyclic["loop"] == "{'self': {...}}"


def test_older_log_calls_are_plain_messages_without_compatibility_keys() -> None:
    """twisted.python.log.msg and .err events (Twisted's own listeners use
    them) carry their text in ``message`` and their ``system``; log.err
    gives ``why`` as the message and the traceback apart."""
    out = io.StringIO()
    observer = json_observer(out)
    text = legacy_log.textFromEventDict
    publishToNewObserver(
        observer,
        {"message": ("Site starting on 8080",), "time": 5.0, "system": "-"},
        text,
    )
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        failure = Failure()
    publishToNewObserver(
        observer,
        {
            "message": (),
            "isError": 1,
            "failure": failure,
            "why": "Unhandled error in Site",
            "time": 6.0,
            "system": "HTTPChannel,3,127.0.0.1",
        },
        text,
    )
    started, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert started == {
        "time": "1970-01-01T00:00:05.000000Z",
        "level": "info",
        "namespace": "log_legacy",
        "message": "Site starting on 8080",
    }
    assert failed["level"] == "critical"
    assert failed["message"] == "Unhandled error in Site"
    assert failed["system"] == "HTTPChannel,3,127.0.0.1"
    assert failed["exception"] == "builtins.ZeroDivisionError: division by zero"
    assert "1 / 0" in failed["traceback"]
    assert not {"isError", "why", "failure", "format"} & set(failed)


def test_an_event_a_legacy_observer_saw_first_is_written_the_same() -> None:
    """A legacy observer before ours adds message/time/system/format keys to
    the event; the line is the one it would have been without them."""

    @provider(ILogObserver)
    def legacy(event: dict[str, Any]) -> None:
        pass

    publisher, out = LogPublisher(), io.StringIO()
    publisher.addObserver(LegacyLogObserverWrapper(legacy))
    publisher.addObserver(json_observer(out))
    Logger(namespace="uploadd.test", observer=publisher).info("up {n}", n=2)
    record = json.loads(out.getvalue())
    del record["time"]
    assert record == {
        "level": "info",
        "namespace": "uploadd.test",
        "message": "up 2",
        "n": 2,
    }


# -- twistd --------------------------------------------------------------------


class Twistd(usage.Options):
    """The options of twistd's own that decide where it logs."""

    optParameters = [["logfile", "l", None, ""], ["logger", None, None, ""]]  # noqa: RUF012
    optFlags = [["nodaemon", "n", ""], ["syslog", None, ""]]  # noqa: RUF012


@implementer(IReactorFromThreads)
class AtOnce:
    def callFromThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        callable(*args, **kwargs)


def under_twistd(*arguments: str) -> ConfiguredOptions:
    """uploadd's options as twistd's subcommand, twistd given ``arguments``."""
    top = Twistd()
    top.parseOptions(list(arguments))
    options = UploaddOptions()
    options.parent = top
    options.parseOptions(["--log-format", "json"])
    return options


@pytest.fixture
def sigusr1() -> Iterator[None]:
    """Whatever handles SIGUSR1 now handles it again after the test."""
    before = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, before)


def given_observer(options: ConfiguredOptions) -> ILogObserver | None:
    """Add the tree to an application as twistd does; the observer it got."""
    application = Application("uploadd")
    tree = Service()
    applied(options.config.log, options, tree, AtOnce()).setServiceParent(application)
    assert tree in next(iter(IServiceCollection(application)))  # the tree runs
    found: ILogObserver | None = application.getComponent(ILogObserver, None)
    return found


def test_text_leaves_the_tree_and_twistds_log_as_they_are() -> None:
    """[log] format = text (the default) changes nothing."""
    options = UploaddOptions()
    options.parseOptions([])
    tree = Service()
    assert options.config.log.format == "text"
    assert applied(options.config.log, options, tree, AtOnce()) is tree


def test_a_bad_format_is_refused_with_the_forms() -> None:
    with pytest.raises(usage.UsageError, match=r"\[log\] format .*text or json"):
        UploaddOptions().parseOptions(["--log-format", "yaml"])


def test_twistd_is_given_a_json_observer_on_its_logfile(
    tmp_path: Path, sigusr1: None
) -> None:
    """With --logfile the JSON lines go to that file, and SIGUSR1 rotates it
    as it does twistd's own."""
    path = tmp_path / "uploadd.log"
    observer = given_observer(under_twistd("--nodaemon", "--logfile", str(path)))
    assert observer is not None
    Logger(namespace="uploadd.test", observer=observer).info("one {n}", n=1)
    assert json.loads(path.read_text())["message"] == "one 1"
    os.kill(os.getpid(), signal.SIGUSR1)
    assert json.loads((tmp_path / "uploadd.log.1").read_text())["n"] == 1
    Logger(namespace="uploadd.test", observer=observer).info("two")
    assert json.loads(path.read_text())["message"] == "two"


def test_twistd_nodaemon_without_a_logfile_gets_json_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under systemd or in a container (--nodaemon, no --logfile) each
    line goes to standard output, for the journal or the container log."""
    observer = given_observer(under_twistd("--nodaemon"))
    assert observer is not None
    Logger(namespace="uploadd.test", observer=observer).info("hello")
    assert json.loads(capsys.readouterr().out)["message"] == "hello"


def test_syslog_keeps_twistds_own_observer() -> None:
    """With --syslog (or --logger) twistd's choice stands: no observer is
    given, and the lines stay text."""
    assert given_observer(under_twistd("--syslog")) is None
