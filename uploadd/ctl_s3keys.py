"""``uploadctl s3-key``: access keys for the S3 API.

    uploadctl s3-key create USER [--scope write|read|upload-only]
    uploadctl s3-key list [USER]
    uploadctl s3-key revoke KEYID

``create`` prints the key id and its secret once: uploadd keeps the secret
sealed under ``[auth] secret`` (the same secret the daemon reads, from the
config or ``<data_dir>/secret``), and nothing shows it again. ``list``
shows ids, users, scopes and whether each key is revoked, never secrets.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any, TextIO

from twisted.internet.interfaces import IReactorTime

from noded.secret import token_secret
from uploadd.auth.access_keys import KEY_SCOPES, AccessKeys
from uploadd.config import Config
from uploadd.errors import UploaddError
from uploadd.store.interface import IMetadataStore

COMMAND = "s3-key"


class Refused(Exception):
    """A mistake of the operator's; str() says which."""


def add_commands(commands: Any) -> None:
    """The ``s3-key`` command and its actions, on uploadctl's subparsers."""
    keys = commands.add_parser(COMMAND, help="S3 access keys of users")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="make an access key for USER and show its secret, once"
    )
    create.add_argument("name", metavar="USER")
    create.add_argument(
        "--scope",
        default="write",
        choices=KEY_SCOPES,
        help="what requests signed with the key may do (default: write)",
    )
    listing = actions.add_parser(
        "list", help="list access keys (all, or USER's), never their secrets"
    )
    listing.add_argument("name", metavar="USER", nargs="?", default="")
    actions.add_parser(
        "revoke", help="revoke a key: requests signed with it are refused"
    ).add_argument("key_id", metavar="KEYID")


def _when(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def run(
    reactor: IReactorTime,
    options: argparse.Namespace,
    config: Config,
    store: IMetadataStore,
    out: TextIO,
) -> None:
    """One ``s3-key`` action; Refused for an operator's mistake."""
    secret = token_secret(config.auth.secret, config.storage.data_dir)
    keys = AccessKeys.with_secret(store, secret, reactor)
    if options.action == "create":
        user = await store.get_user(options.name)
        if user is None:
            raise Refused(f"no user {options.name!r}")
        try:
            record, key_secret = await keys.create(user, options.scope)
        except UploaddError as error:
            raise Refused(error.detail) from None
        out.write(
            f"access key id:     {record.key_id}\n"
            f"secret access key: {key_secret}\n"
            f"for {user.username}, scope {record.scope}. The secret is shown"
            " this once: uploadd keeps it sealed and cannot show it again.\n"
        )
    elif options.action == "list":
        user = None
        if options.name:
            user = await store.get_user(options.name)
            if user is None:
                raise Refused(f"no user {options.name!r}")
        names = {u.id: u.username for u in await store.list_users()}
        for record in await keys.keys_of(user):
            state = (
                "active"
                if record.revoked_at is None
                else f"revoked {_when(record.revoked_at)}"
            )
            out.write(
                f"{record.key_id}\t{names.get(record.user_id, record.user_id)}"
                f"\t{record.scope}\t{_when(record.created_at)}\t{state}\n"
            )
    else:
        if not await keys.revoke(options.key_id):
            found = await store.get_access_key(options.key_id)
            if found is None:
                raise Refused(f"no access key {options.key_id!r}")
            raise Refused(f"access key {options.key_id} was revoked already")
        out.write(f"revoked {options.key_id}\n")
