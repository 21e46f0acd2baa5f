"""``twistd uploadd`` (and ``twistd uploadd worker``): options and services.

The only module that imports the global reactor (and only inside
:func:`makeService`, when twistd has installed it); it goes down from here
typed as :class:`noded.reactor.IReactor`.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from noded.logs import applied
from noded.reactor import IReactor, checked
from noded.secret import NoSecret
from noded.settings import ConfiguredOptions, twistd_options
from uploadd.config import ALIASES, ROLES, Config, search_path


def _check_worker(options: ConfiguredOptions) -> None:
    if options["role"] not in ROLES:
        raise usage.UsageError(f"--role is one of {', '.join(ROLES)}")
    if not options.config.amqp.url:
        raise usage.UsageError(
            "a worker process needs RabbitMQ: set [amqp] url (without it,"
            " uploadd runs its workers itself)"
        )


WorkerOptions = twistd_options(
    Config,
    "UPLOADD",
    ALIASES,
    "config/uploadd.conf.sample",
    "Run a transcode or push worker against RabbitMQ ([amqp] url). Settings "
    "as for uploadd: --config, UPLOADD_<SECTION>_<KEY>, these options.",
    synopsis="--role transcode|push [options]",
    parameters=[["role", None, None, "transcode or push"]],
    check=_check_worker,
    search=search_path,
)

Options = twistd_options(
    Config,
    "UPLOADD",
    ALIASES,
    "config/uploadd.conf.sample",
    "Run the uploadd file server. Settings come from --config (else "
    "$UPLOADD_CONFIG, else the first of ./uploadd.conf, "
    "~/.config/uploadd/uploadd.conf, /etc/uploadd/uploadd.conf), then "
    "UPLOADD_<SECTION>_<KEY> environment variables, then these options.",
    commands=[["worker", None, WorkerOptions, "run a transcode or push worker"]],
    search=search_path,
)


def makeService(
    options: ConfiguredOptions, reactor: IReactor | None = None
) -> IService:
    """uploadd's service tree (see :class:`uploadd.service.UploaddService`),
    or a worker's with ``worker``; with ``[log] format = json``, under the
    service that has twistd log JSON lines (:mod:`noded.logs`)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = checked(global_reactor)
    if options.subCommand == "worker":
        from uploadd.workers.service import WorkerService

        worker = options.subOptions
        try:
            worker_tree = WorkerService(worker.config, worker["role"], reactor)
            return applied(worker.config.log, worker, worker_tree, reactor)
        except NoSecret as error:
            raise usage.UsageError(
                f"{error}: give the worker [workers] token (uploadctl worker-token)"
            ) from None
    from uploadd.service import UploaddService

    tree = UploaddService(options.config, reactor)
    return applied(options.config.log, options, tree, reactor)
