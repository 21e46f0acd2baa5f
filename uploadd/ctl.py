"""``uploadctl``: manage users and tokens on the same config and database as uploadd.

    uploadctl [--config FILE] [--create] user add NAME [--scope write] [--scope read]
    uploadctl user list | user remove NAME | user passwd NAME
    uploadctl user scopes NAME SCOPE...
    uploadctl token NAME [--scope SCOPE] [--ttl 1h]
    uploadctl worker-token [--ttl 30d]
    uploadctl node add NAME HOST:PORT | node list | node drain|activate|remove NAME
    uploadctl instance list | instance retire NAME
    uploadctl s3-key create USER [--scope write|read|upload-only]
    uploadctl s3-key list [USER] | s3-key revoke KEYID
    uploadctl login [--url URL] [USERNAME]
    uploadctl upload FILE... [--url URL] [--parallel N] [--chunk SIZE]
    uploadctl download ID [--url URL] [-o PATH]

The last three are a client of uploadd's HTTP API (``uploadd/client/``): they
read neither the config nor the database.

A password is read from the terminal (asked twice), or from the first line of
standard input when it is not a terminal.

The configuration is found as ``twistd uploadd`` finds it
(:func:`uploadd.config.load_config`). A SQLite database that is not there is
not made (a command run from the wrong directory would otherwise fill a new
empty one): only ``bootstrap`` or ``--create`` makes it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import react
from twisted.python.failure import Failure

from noded.private import FILE, private_dir
from noded.reactor import IReactor, checked
from noded.secret import token_secret
from noded.settings import (
    ConfigError,
    config_file,
    parse_duration,
    parse_host,
    parse_port,
)
from uploadd import ctl_s3keys
from uploadd.auth.passwords import hash_password
from uploadd.auth.tokens import Principal, TokenIssuer, check_scopes
from uploadd.client import commands as client
from uploadd.config import Config, load_config, search_path
from uploadd.store.factory import open_store
from uploadd.store.interface import Conflict, IMetadataStore, NodeRecord
from uploadd.workers.wiring import WORKER


class CommandError(Exception):
    """A user mistake: printed without a traceback, exit status 2."""


def _scopes(values: Sequence[str]) -> frozenset[str]:
    try:
        return check_scopes(value for text in values for value in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="uploadctl",
        description="Manage uploadd users and tokens; upload and download files.",
    )
    top.add_argument(
        "-c",
        "--config",
        help="uploadd config file (default: as twistd uploadd finds it:"
        " $UPLOADD_CONFIG, ./uploadd.conf, ~/.config/uploadd/uploadd.conf,"
        " /etc/uploadd/uploadd.conf)",
    )
    top.add_argument(
        "--create",
        action="store_true",
        help="make the SQLite database if it is not there (bootstrap always may)",
    )
    commands = top.add_subparsers(dest="command", required=True)

    user = commands.add_parser("user", help="manage users")
    users = user.add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="create a user (asks for a password)")
    add.add_argument("name")
    add.add_argument(
        "--scope",
        action="append",
        default=[],
        help="admin, read, write or upload-only; repeat or comma-separate "
        "(default: write)",
    )
    users.add_parser("list", help="list users and their scopes")
    users.add_parser(
        "remove", help="delete a user and their files' records"
    ).add_argument("name")
    users.add_parser("passwd", help="set a user's password").add_argument("name")
    email = users.add_parser("email", help="set where a user's notifications go")
    email.add_argument("name")
    email.add_argument("address", nargs="?", default="", help="empty clears it")
    scopes = users.add_parser("scopes", help="set a user's scopes")
    scopes.add_argument("name")
    scopes.add_argument("scope", nargs="+")

    node = commands.add_parser("node", help="manage storage nodes")
    node_actions = node.add_subparsers(dest="action", required=True)
    add_node = node_actions.add_parser("add", help="register a node (used at once)")
    add_node.add_argument("name")
    add_node.add_argument("address", help="HOST:AMP_PORT of the node")
    node_actions.add_parser("list", help="list nodes and their modes")
    for action, text in (
        ("drain", "move every file off a node; it takes nothing new"),
        ("activate", "let a drained node take files again"),
        ("remove", "forget a node and its replica records"),
    ):
        node_actions.add_parser(action, help=text).add_argument("name")

    instance = commands.add_parser(
        "instance", help="uploadd instances sharing this database"
    )
    instance_actions = instance.add_subparsers(dest="action", required=True)
    instance_actions.add_parser(
        "list", help="list instances, their URLs and whether they run"
    )
    instance_actions.add_parser(
        "retire",
        help="a stopped instance leaves for good: cancel the uploads whose "
        "bytes it held (their clients get 410)",
    ).add_argument("name")

    ctl_s3keys.add_commands(commands)

    commands.add_parser(
        "migrate",
        help="bring the database to the newest schema and print its version"
        " (every command does this first; run it alone before starting instances)",
    )
    commands.add_parser(
        "bootstrap",
        help="on a database with no users, create 'admin' with a random password",
    )

    token = commands.add_parser("token", help="print a bearer token for a user")
    token.add_argument("name")
    token.add_argument(
        "--scope", action="append", default=[], help="narrow to these scopes"
    )
    token.add_argument("--ttl", default="1h", help="lifetime, such as 30m or 30d")
    worker = commands.add_parser(
        "worker-token", help="print a token for a transcode worker on another machine"
    )
    worker.add_argument("--ttl", default="30d", help="lifetime, such as 30d")
    client.add_commands(commands)
    return top


def _issue(
    reactor: IReactorTime, config: Config, principal: Principal, ttl: str
) -> str:
    try:
        seconds = parse_duration(ttl)
    except ValueError:
        raise CommandError(f"--ttl: expected a duration, got {ttl!r}") from None
    secret = token_secret(config.auth.secret, config.storage.data_dir)
    return TokenIssuer(secret, reactor).issue(principal, seconds)


def read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise CommandError("the passwords differ")
    else:
        first = stdin.readline().rstrip("\r\n")
    if len(first) < 8:
        raise CommandError("a password needs at least 8 characters")
    return first


async def run(
    reactor: IReactor, options: argparse.Namespace, config: Config, out: TextIO
) -> None:
    private_dir(config.storage.data_dir)
    store = open_store(config.database.url, config.storage.data_dir, reactor)
    try:
        version = await store.migrate()
        if options.command == "migrate":
            out.write(f"schema version {version}\n")
            return
        await _dispatch(reactor, options, config, store, out)
    finally:
        store.close()


async def _dispatch(
    reactor: IReactorTime,
    options: argparse.Namespace,
    config: Config,
    store: IMetadataStore,
    out: TextIO,
) -> None:
    name: str = getattr(options, "name", "")
    if options.command == "bootstrap":
        await bootstrap(reactor, config, store, out)
    elif options.command == "node":
        await nodes(reactor, options, store, out)
    elif options.command == "instance":
        await instances(reactor, options, store, out, config.shared_store)
    elif options.command == ctl_s3keys.COMMAND:
        try:
            await ctl_s3keys.run(reactor, options, config, store, out)
        except ctl_s3keys.Refused as refused:
            raise CommandError(str(refused)) from None
    elif options.command == "worker-token":
        out.write(_issue(reactor, config, WORKER, options.ttl) + "\n")
    elif options.command == "token":
        user = await store.get_user(name)
        if user is None:
            raise CommandError(f"no user {name!r}")
        scopes = _scopes(options.scope) if options.scope else user.scopes
        if not scopes <= user.scopes:
            raise CommandError(f"{name} holds only {' '.join(sorted(user.scopes))}")
        principal = Principal(user.id, user.username, scopes)
        out.write(_issue(reactor, config, principal, options.ttl) + "\n")
    elif options.action == "add":
        password = read_password(sys.stdin)
        try:
            user = await store.add_user(
                name,
                hash_password(password),
                _scopes(options.scope or ["write"]),
                reactor.seconds(),
            )
        except Conflict as error:
            raise CommandError(str(error)) from None
        out.write(f"added {user.username} ({' '.join(sorted(user.scopes))})\n")
    elif options.action == "list":
        for user in await store.list_users():
            out.write(f"{user.username}\t{' '.join(sorted(user.scopes))}\n")
    elif options.action == "remove":
        if not await store.delete_user(name):
            raise CommandError(f"no user {name!r}")
        out.write(f"removed {name}\n")
    elif options.action == "passwd":
        hashed = hash_password(read_password(sys.stdin))
        if await store.update_user(name, password_hash=hashed) is None:
            raise CommandError(f"no user {name!r}")
        out.write(f"password of {name} changed\n")
    elif options.action == "email":
        if "@" not in options.address and options.address:
            raise CommandError("address: expected an email address")
        if not await store.set_email(name, options.address or None):
            raise CommandError(f"no user {name!r}")
        out.write(f"{name}: {options.address or 'no email'}\n")
    elif options.action == "scopes":
        changed = await store.update_user(name, scopes=_scopes(options.scope))
        if changed is None:
            raise CommandError(f"no user {name!r}")
        out.write(f"{name}: {' '.join(sorted(changed.scopes))}\n")


async def nodes(
    reactor: IReactorTime,
    options: argparse.Namespace,
    store: IMetadataStore,
    out: TextIO,
) -> None:
    """Node records in the store; a running uploadd picks changes up on its
    next ping round."""
    name: str = getattr(options, "name", "")
    if options.action == "add":
        host, _, port = options.address.rpartition(":")
        try:
            record = NodeRecord(
                name, parse_host(host), parse_port(port), reactor.seconds()
            )
        except ValueError:
            raise CommandError("address is HOST:PORT, such as 127.0.0.1:7001") from None
        try:
            await store.add_node(record)
        except Conflict as error:
            raise CommandError(str(error)) from None
        out.write(f"added node {name} at {record.host}:{record.port}\n")
    elif options.action == "list":
        for record in await store.list_nodes():
            out.write(f"{record.id}\t{record.host}:{record.port}\t{record.mode}\n")
    elif options.action == "remove":
        if not await store.delete_node(name):
            raise CommandError(f"no node {name!r}")
        out.write(f"removed node {name}\n")
    else:
        mode = "draining" if options.action == "drain" else "active"
        found = {r.id: r for r in await store.list_nodes()}.get(name)
        if found is None:
            raise CommandError(f"no node {name!r}")
        await store.save_node(
            NodeRecord(found.id, found.host, found.port, found.added_at, mode)
        )
        out.write(f"node {name} is {mode}\n")


async def instances(
    reactor: IReactorTime,
    options: argparse.Namespace,
    store: IMetadataStore,
    out: TextIO,
    shared: bool,
) -> None:
    """The instances that registered in the store; retiring one that has
    stopped for good. On a shared (PostgreSQL) store a running instance
    holds a lock on its name, which tells whether it runs."""
    if options.action == "list":
        for record in await store.list_instances():
            if record.retired_at is not None:
                state = "retired"
            elif not shared:
                state = "-"
            elif await store.leads(f"instance {record.name}"):
                state = "stopped"
            else:
                state = "running"
            out.write(f"{record.name}\t{record.url or '-'}\t{state}\n")
        return
    name: str = options.name
    found = await store.get_instance(name)
    if found is None:
        raise CommandError(f"no instance {name!r}")
    if found.retired_at is not None:
        raise CommandError(f"instance {name!r} was retired already")
    # A running instance holds its name's lock (on PostgreSQL) for its life.
    if not await store.leads(f"instance {name}"):
        raise CommandError(f"instance {name!r} is running; stop it first")
    cancelled = await store.retire_instance(name, reactor.seconds())
    out.write(f"retired instance {name}: {cancelled} unfinished uploads cancelled\n")


async def bootstrap(
    reactor: IReactorTime, config: Config, store: IMetadataStore, out: TextIO
) -> None:
    """A first admin for a fresh install; its password is kept 0600 in data_dir."""
    if await store.list_users():
        return
    password = secrets.token_urlsafe(12)
    await store.add_user(
        "admin", hash_password(password), frozenset({"admin"}), reactor.seconds()
    )
    path = config.storage.data_dir / "admin-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE)
    os.fchmod(fd, FILE)  # it may have been there, looser
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    out.write(f"created user 'admin' with password {password} (kept in {path})\n")


def check_database(
    options: argparse.Namespace,
    config: Config,
    environ: Mapping[str, str],
    sources: Mapping[tuple[str, str], str],
) -> None:
    """Refuse to go on when the SQLite database is not there, unless asked to
    make one; the error names the path and how it was arrived at."""
    path = config.database_path
    if config.shared_store or path.exists():
        return
    if options.command == "bootstrap" or options.create:
        return
    if ("database", "url") in sources:
        how = f"[database] url from {sources['database', 'url']}"
    else:
        given = sources.get(("storage", "data_dir"))
        how = f"[storage] data_dir {config.storage.data_dir}" + (
            f" from {given}" if given else ", the default"
        )
    found = config_file("UPLOADD", options.config, environ, search_path(environ))
    if found is not None:
        read = f"config file {found}"
    else:
        searched = ", ".join(str(p.absolute()) for p in search_path(environ))
        read = f"no config file: no --config, no UPLOADD_CONFIG, none of {searched}"
    raise CommandError(
        f"no database at {path.absolute()} ({how}; {read}). Point uploadctl at"
        " uploadd's configuration with --config FILE or UPLOADD_CONFIG, or make"
        " a new database with 'uploadctl bootstrap' or 'uploadctl --create ...'"
    )


def main(argv: Sequence[str] | None = None) -> None:
    top = parser()
    options = top.parse_args(argv)
    environ = dict(os.environ)
    if options.command in client.COMMANDS:
        raise SystemExit(client.run(options, environ))
    sources: dict[tuple[str, str], str] = {}
    try:
        config = load_config(options.config, environ, sources=sources)
        if options.command == "user" and options.action in ("add", "scopes"):
            _scopes(options.scope or ["write"])
        check_database(options, config, environ, sources)
    except (ConfigError, argparse.ArgumentTypeError, CommandError) as error:
        top.exit(2, f"uploadctl: {error}\n")

    def start(reactor: object) -> Deferred[None]:
        done = Deferred.fromCoroutine(
            run(checked(reactor), options, config, sys.stdout)
        )

        def explain(failure: Failure) -> None:
            failure.trap(CommandError)
            sys.stderr.write(f"uploadctl: {failure.value}\n")
            raise SystemExit(2)

        return done.addErrback(explain)

    react(start)
