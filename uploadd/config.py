"""uploadd's configuration: every key, its default and its form.

Read with :func:`load_config`: an INI file (``--config``, else
``UPLOADD_CONFIG``, else the first of :func:`search_path` that exists)
< ``UPLOADD_<SECTION>_<KEY>`` (or ``UPLOADD_<KEY>`` where the key is unique)
< twistd options ``--<section>-<key>``. ``twistd uploadd`` and ``uploadctl``
both read it this way, so they find the same data and database.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from noded import settings
from noded.config import MetricsSection
from noded.logs import LogSection
from noded.settings import (
    parse_bool,
    parse_choice,
    parse_duration,
    parse_endpoint,
    parse_host,
    parse_port,
    parse_positive_int,
    parse_secret,
    parse_size,
    parse_text,
    parse_url,
    setting,
)
from uploadd.events import topics
from uploadd.renditions import NAMES, parse_defaults
from uploadd.store.factory import sqlite_path
from uploadd.workers.vapid import BadVapidKey, private_key

SIZE = "a size in bytes with an optional K, M, G or T suffix, such as 512M"
DURATION = "a duration such as 30, 1.5s, 500ms, 5m or 1h"


def parse_reader_threads(text: str) -> int:
    if text.strip().lower() == "auto":
        return max(1, (os.cpu_count() or 1) // 2)
    return parse_positive_int(text)


def parse_digests(text: str) -> frozenset[str]:
    names = frozenset(name.strip().lower() for name in text.split(",") if name.strip())
    if "sha256" not in names or not names <= {"sha256", "md5"}:
        raise ValueError("sha256, with md5 or without")
    return names


def parse_origins(text: str) -> frozenset[str]:
    """``*`` or comma-separated ``scheme://host[:port]`` origins; empty: none."""
    origins = frozenset(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and "://" not in origin:
            raise ValueError(origin)
    return origins


@attrs.frozen
class HTTPSection:
    host: str = setting(
        "127.0.0.1", parse_host, "address to listen on", "an IP address or localhost"
    )
    port: int = setting(
        "8080", parse_port, "TCP port; 0 picks a free one", "an integer from 0 to 65535"
    )
    endpoint: str = setting(
        "",
        parse_endpoint,
        "where to listen, instead of host and port: tcp:8080:interface=0.0.0.0,"
        " ssl:8443:privateKey=key.pem:certKey=cert.pem or unix:/run/uploadd.sock;"
        " empty: tcp on host and port",
        "a Twisted server endpoint string",
    )
    max_upload_size: int = setting(
        "10G", parse_size, "largest accepted upload body", SIZE
    )
    max_body_size: int = setting(
        "1M", parse_size, "largest accepted body on non-upload routes", SIZE
    )
    idle_timeout: float = setting(
        "60s",
        parse_duration,
        "close a connection idle for this long (a body or a response included)",
        DURATION,
    )
    header_timeout: float = setting(
        "20s",
        parse_duration,
        "a request's line and headers must arrive within this long of its "
        "first byte; 0 turns the deadline off",
        DURATION,
    )
    shutdown_grace: float = setting(
        "30s",
        parse_duration,
        "on stop, how long requests in flight may run before they are answered "
        "503 (resumable bodies keep what reached disk)",
        DURATION,
    )
    public_url: str = setting(
        "",
        parse_url(("http", "https")),
        "base URL used in links; empty uses the request's Host header",
        "an http:// or https:// URL",
    )
    cors_origins: frozenset[str] = setting(
        "",
        parse_origins,
        "browser origins allowed to call the API; * for any, empty for none",
        "*, or comma-separated origins such as https://app.example.com",
    )
    page_size: int = setting(
        "50", parse_positive_int, "default page size of listings", "a positive integer"
    )

    @property
    def listen_on(self) -> str:
        """The endpoint string uploadd listens on."""
        return settings.listen_on(self.endpoint, self.host, self.port)


@attrs.frozen
class StorageSection:
    data_dir: Path = setting(
        "var/uploadd",
        lambda text: Path(text.strip()).expanduser(),
        "where files, the database and generated secrets live",
        "a directory path",
    )
    fsync: bool = setting(
        "true", parse_bool, "fsync each file before recording it", "true or false"
    )
    digests: frozenset[str] = setting(
        "sha256",
        parse_digests,
        "sums every file records: sha256 always; md5 as well costs about twice"
        " sha256's CPU per byte (uploads whose protocol needs md5, Content-Range"
        " with an md5 at completion and S3 entity tags, get it either way)",
        "sha256, or sha256, md5",
    )

    @property
    def every_md5(self) -> bool:
        """Every file records its md5, not only those whose protocol needs it."""
        return "md5" in self.digests


@attrs.frozen
class DatabaseSection:
    url: str = setting(
        "",
        parse_url(("sqlite", "postgresql", "postgres")),
        "metadata store; empty means sqlite:///<data_dir>/uploadd.sqlite3;"
        " postgresql://USER@HOST:PORT/DB shares one database between instances"
        " (password in the URL, PGPASSWORD or ~/.pgpass)",
        "a sqlite:///PATH or postgresql:// URL",
    )


@attrs.frozen
class AuthSection:
    secret: str = setting(
        "",
        parse_secret,
        "HMAC key for tokens; empty generates one into <data_dir>/secret",
        "a string of at least 32 characters",
    )
    token_ttl: float = setting(
        "1h", parse_duration, "lifetime of tokens from POST /auth/token", DURATION
    )
    signin_failures_per_user: int = setting(
        "10", parse_positive_int,
        "failed sign-ins for one username within signin_window before more get 429",
        "a positive integer",
    )  # fmt: skip
    signin_failures_per_address: int = setting(
        "50", parse_positive_int,
        "failed sign-ins from one client address (IPv6: its /64) within"
        " signin_window before more get 429",
        "a positive integer",
    )  # fmt: skip
    signin_window: float = setting(
        "15m", parse_duration, "how long a failed sign-in counts against a limit",
        DURATION,
    )  # fmt: skip


@attrs.frozen
class IngestSection:
    high_water: int = setting(
        "16M", parse_size, "pause reading once this much waits for disk", SIZE
    )
    low_water: int = setting(
        "4M", parse_size, "resume reading below this much waiting", SIZE
    )
    memory_budget: int = setting(
        "64M",
        parse_size,
        "bytes waiting for disk across all uploads at once; past it the"
        " uploads holding the most stop reading until writes catch up",
        SIZE,
    )
    writer_threads: int = setting(
        "4",
        parse_positive_int,
        "threads that hash and write bodies",
        "a positive integer",
    )
    reader_threads: int = setting(
        "auto",
        parse_reader_threads,
        "threads reading plain bodies from their sockets at once; each"
        " competes with the event loop for Python's interpreter lock, so more"
        " slow every other request down; auto is half the CPUs",
        "auto, or a positive integer",
    )
    max_concurrent_uploads: int = setting(
        "256",
        parse_positive_int,
        "uploads received at once; more get 503",
        "a positive integer",
    )
    progress_ttl: float = setting(
        "10m", parse_duration, "how long finished upload progress stays", DURATION
    )


@attrs.frozen
class UploadsSection:
    expire_after: float = setting(
        "24h",
        parse_duration,
        "a resumable upload left idle this long expires and its bytes are freed",
        DURATION,
    )
    sweep_interval: float = setting(
        "1m", parse_duration, "how often expired uploads are swept", DURATION
    )
    checkpoint: int = setting(
        "8M",
        parse_size,
        "while a long resumable body arrives, make its bytes durable and record "
        "the offset every this many bytes, so a crash keeps them; 0 turns it off",
        SIZE,
    )
    progress_interval: float = setting(
        "1s",
        parse_duration,
        "while a resumable body (IETF draft) arrives, send a 104 interim "
        "response with its durable offset at most this often; 0 turns them off",
        DURATION,
    )
    max_append_size: int = setting(
        "0",
        parse_size,
        "the most one request may add to a resumable upload (announced as "
        "max-append-size); 0: only the upload's size limit",
        SIZE,
    )
    min_append_size: int = setting(
        "0",
        parse_size,
        "the least one request may add to a resumable upload, except the one "
        "completing it (announced as min-append-size); 0: no minimum",
        SIZE,
    )


_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def parse_region(text: str) -> str:
    """A region name as AWS writes them: lowercase letters, digits, '-'."""
    text = text.strip()
    if not _REGION.match(text):
        raise ValueError(text)
    return text


def parse_listen(text: str) -> str:
    """A Twisted server endpoint string; not empty."""
    endpoint = parse_endpoint(text)
    if not endpoint:
        raise ValueError(text)
    return endpoint


def parse_max_parts(text: str) -> int:
    """How many parts an upload may have: 1 to S3's 10,000."""
    value = parse_positive_int(text)
    if value > 10_000:
        raise ValueError(text)
    return value


def parse_presign_expiry(text: str) -> float:
    """A presigned URL's longest life: up to S3's seven days."""
    value = parse_duration(text)
    if not 0 < value <= 7 * 24 * 3600:
        raise ValueError(text)
    return value


@attrs.frozen
class S3Section:
    enabled: bool = setting(
        "false",
        parse_bool,
        "serve the S3-compatible API (path-style: http://host:port/bucket/key)"
        " on its own listener",
        "true or false",
    )
    endpoint: str = setting(
        "tcp:9000:interface=127.0.0.1",
        parse_listen,
        "where the S3 API listens: tcp:9000:interface=0.0.0.0, ssl:9443:..."
        " (TLS lets clients send checksums as trailers)",
        "a Twisted server endpoint string",
    )
    region: str = setting(
        "us-east-1",
        parse_region,
        "the region clients sign requests for",
        "an AWS region name such as us-east-1",
    )
    cors_origins: frozenset[str] = setting(
        "",
        parse_origins,
        "browser origins allowed on every bucket, besides each bucket's own"
        " CORS rules (PutBucketCors); * for any, empty for none",
        "*, or comma-separated origins such as https://app.example.com",
    )
    min_part: int = setting(
        "5M",
        parse_size,
        "the smallest a multipart upload's part may be, but the last",
        SIZE,
    )
    max_parts: int = setting(
        "10000",
        parse_max_parts,
        "the most parts a multipart upload may have",
        "an integer from 1 to 10000",
    )
    presign_max_expiry: float = setting(
        "7d",
        parse_presign_expiry,
        "the longest a presigned URL may live (X-Amz-Expires)",
        "a duration up to 7d",
    )


def parse_nodes(text: str) -> tuple[tuple[str, str, int], ...]:
    """``id=host:port, ...`` -> ((id, host, port), ...)."""
    nodes = []
    for item in text.split(","):
        if not item.strip():
            continue
        node_id, _, address = item.strip().partition("=")
        host, _, port = address.rpartition(":")
        if not node_id or not host:
            raise ValueError(item)
        nodes.append((node_id.strip(), parse_host(host), parse_port(port)))
    return tuple(nodes)


_INSTANCE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def parse_instance(text: str) -> str:
    """Empty (the host name) or a name of letters, digits, '.', '_', '-'."""
    text = text.strip()
    if text and not _INSTANCE.match(text):
        raise ValueError(text)
    return text


def parse_zones(text: str) -> tuple[tuple[str, str], ...]:
    """``CIDR=zone, ...`` -> ((CIDR, zone), ...), CIDRs checked."""
    zones = []
    for item in text.split(","):
        if not item.strip():
            continue
        network, _, zone = item.strip().partition("=")
        ipaddress.ip_network(network.strip(), strict=False)
        if not zone.strip():
            raise ValueError(item)
        zones.append((network.strip(), zone.strip()))
    return tuple(zones)


@attrs.frozen
class ClusterSection:
    secret: str = setting(
        "",
        parse_secret,
        "shared with every noded: authenticates AMP, rsync and download URLs; "
        "empty generates one into <data_dir>/cluster-secret",
        "a string of at least 32 characters",
    )
    nodes: tuple[tuple[str, str, int], ...] = setting(
        "",
        parse_nodes,
        "nodes to register at start (more can be added at runtime)",
        "id=host:amp_port, comma separated",
    )
    replicas: int = setting(
        "2",
        parse_positive_int,
        "copies of every file on distinct nodes",
        "a positive integer",
    )
    ping_interval: float = setting(
        "2s", parse_duration, "how often nodes are pinged", DURATION
    )
    ping_timeout: float = setting(
        "1s", parse_duration, "a ping unanswered this long fails", DURATION
    )
    rise: int = setting(
        "2",
        parse_positive_int,
        "successful pings to count a node UP",
        "a positive integer",
    )
    fall: int = setting(
        "3",
        parse_positive_int,
        "failed pings to count a node DOWN",
        "a positive integer",
    )
    repair_after: float = setting(
        "60s",
        parse_duration,
        "a node DOWN this long has its files copied again",
        DURATION,
    )
    repair_interval: float = setting(
        "10s", parse_duration, "how often repair walks the files", DURATION
    )
    download_ttl: float = setting(
        "1h", parse_duration, "lifetime of signed download URLs", DURATION
    )
    transfers_per_node: int = setting(
        "2",
        parse_positive_int,
        "concurrent rsync transfers into one node",
        "a positive integer",
    )
    rsync_timeout: int = setting(
        "60", parse_positive_int, "rsync --timeout: seconds without progress", "seconds"
    )
    rsync_contimeout: int = setting(
        "10", parse_positive_int, "rsync --contimeout: seconds to connect", "seconds"
    )
    rsync_deadline: float = setting(
        "1h", parse_duration, "a transfer still running this long is killed", DURATION
    )
    keep_local: bool = setting(
        "false",
        parse_bool,
        "keep uploadd's own copy once every replica is verified",
        "true or false",
    )
    await_copy: str = setting(
        "auto",
        parse_choice(("auto", "true", "false")),
        "answer a finished upload once a node holds a verified copy, so the "
        "file never depends on the instance that received it; auto: when "
        "[database] url is PostgreSQL (instances share it)",
        "auto, true or false",
    )
    instance: str = setting(
        "",
        parse_instance,
        "this uploadd instance's name among those sharing one database "
        "(each unique); empty: the host name",
        "letters, digits, '.', '_' or '-'",
    )
    instance_url: str = setting(
        "",
        parse_url(("http",)),
        "where the other instances reach this one, to continue a resumable "
        "upload whose bytes are here; empty: http://<[http] host>:<port>",
        "an http://host:port URL",
    )
    zones: tuple[tuple[str, str], ...] = setting(
        "",
        parse_zones,
        "client networks and the node zone nearest to them",
        "CIDR=zone, comma separated",
    )


@attrs.frozen
class AmqpSection:
    url: str = setting(
        "",
        parse_url(("amqp",)),
        "RabbitMQ for events and workers; empty uses the in-process bus",
        "an amqp://user:password@host:port/vhost URL",
    )
    exchange: str = setting("uploadd", parse_text, "the topic exchange", "a name")
    prefetch: int = setting(
        "8",
        parse_positive_int,
        "unacknowledged messages per consumer",
        "a positive integer",
    )
    max_attempts: int = setting(
        "5",
        parse_positive_int,
        "deliveries of a failing message before it is dead-lettered",
        "a positive integer",
    )
    queue_type: str = setting(
        "classic",
        parse_choice(("classic", "quorum")),
        "type of the shared work queues: quorum replicates them across a "
        "RabbitMQ cluster (an existing queue keeps the type it was made with)",
        "classic or quorum",
    )


@attrs.frozen
class WebhooksSection:
    allow_private: bool = setting(
        "false",
        parse_bool,
        "let webhooks go to loopback, private, link-local and multicast"
        " addresses (tests, private deployments)",
        "true or false",
    )


@attrs.frozen
class EventsSection:
    replay: float = setting(
        "1d",
        parse_duration,
        "how long published events are kept for /events clients that come "
        "back with Last-Event-ID (older ones are deleted)",
        DURATION,
    )


@attrs.frozen
class SmtpSection:
    host: str = setting(
        "", parse_text, "SMTP server for email pushes; empty sends no email", "a host"
    )
    port: int = setting("25", parse_port, "SMTP port", "an integer from 0 to 65535")
    username: str = setting(
        "", parse_text, "SMTP login, if the server wants one", "a name"
    )
    password: str = setting("", parse_text, "SMTP password", "a string")
    sender: str = setting(
        "uploadd@localhost", parse_text, "the From address", "an email address"
    )
    events: str = setting(
        topics.FILE_STORED,
        parse_text,
        "which events are mailed to their user",
        "topic patterns, space separated",
    )


def parse_subject(text: str) -> str:
    """Empty, a ``mailto:`` address or an ``https://`` URL (RFC 8292's
    ``sub``)."""
    text = text.strip()
    mailto = text.startswith("mailto:") and "@" in text
    if text and not (mailto or text.startswith("https://")):
        raise ValueError(text)
    return text


@attrs.frozen
class PushSection:
    vapid_private_key: str = setting(
        "",
        parse_secret,
        "Web Push (VAPID) private key, shared by every instance and push worker;"
        " empty generates one into <data_dir>/vapid-private-key",
        "base64url of a P-256 private key's 32 bytes, as web-push tools print it",
    )
    subject: str = setting(
        "",
        parse_subject,
        "whom push services may contact about uploadd's notifications; empty:"
        " [http] public_url if it is https, else mailto:<[smtp] sender>",
        "a mailto: address or an https:// URL",
    )
    events: str = setting(
        topics.TRANSCODE_DONE,
        parse_text,
        "which events are pushed to the browsers their user subscribed",
        "topic patterns, space separated",
    )
    ttl: float = setting(
        "1d",
        parse_duration,
        "how long a push service keeps a notification for a browser that is offline",
        DURATION,
    )
    allow_private: bool = setting(
        "false",
        parse_bool,
        "let pushes go to loopback, private, link-local and multicast addresses,"
        " and over http (tests, private push services)",
        "true or false",
    )
    max_subscriptions: int = setting(
        "20",
        parse_positive_int,
        "browsers one user may subscribe; one more forgets the oldest",
        "a positive integer",
    )


ROLES = ("transcode", "push")


def parse_roles(text: str) -> tuple[str, ...]:
    words = text.replace(",", " ").split()
    if words == ["none"]:
        return ()
    if not words or any(word not in ROLES for word in words):
        raise ValueError(text)
    return tuple(dict.fromkeys(words))


def parse_silence(text: str) -> float:
    value = float(text.strip().lower().removesuffix("db"))
    if not -100 <= value < 0:
        raise ValueError(text)
    return value


@attrs.frozen
class WorkersSection:
    roles: tuple[str, ...] = setting(
        "transcode push",
        parse_roles,
        "workers uploadd runs itself; `twistd uploadd worker --role R` runs"
        " more on any machine (with [amqp] url)",
        "transcode and/or push, space separated, or none",
    )
    transcode_concurrency: int = setting(
        "2", parse_positive_int, "transcode jobs one worker runs at once",
        "a positive integer",
    )  # fmt: skip
    push_concurrency: int = setting(
        "8", parse_positive_int,
        "webhook, email and Web Push pushes one worker runs at once",
        "a positive integer",
    )  # fmt: skip
    time_limit: float = setting(
        "1h", parse_duration, "a transcode taking longer is killed and failed",
        DURATION,
    )  # fmt: skip
    max_attempts: int = setting(
        "3", parse_positive_int,
        "starts of a transcode job (a worker died under it) before it is failed",
        "a positive integer",
    )  # fmt: skip
    profiles: tuple[tuple[str, str], ...] = setting(
        "audio/*=audio-aac video/*=video-desilence application/pdf=pdf-slides",
        parse_defaults,
        "renditions a file gets by media type, unless its uploader names some"
        f" ({', '.join(NAMES)})",
        "media/type=profile pairs, space separated",
    )
    silence_threshold: float = setting(
        "-35", parse_silence, "video-desilence: quieter than this is silence",
        "decibels below 0, such as -35",
    )  # fmt: skip
    silence_minimum: float = setting(
        "0.5s", parse_duration, "video-desilence: shorter silences are kept",
        DURATION,
    )  # fmt: skip
    api_url: str = setting(
        "",
        parse_url(("http", "https")),
        "the uploadd a worker process talks to; empty: [http] host and port here",
        "an http:// or https:// URL",
    )
    token: str = setting(
        "",
        parse_secret,
        "a worker process's token (uploadctl worker-token); empty mints one"
        " with [auth] secret or <data_dir>/secret",
        "a token from uploadctl worker-token",
    )
    work_dir: Path = setting(
        "",
        lambda text: Path(text.strip()).expanduser() if text.strip() else Path(),
        "scratch space for transcodes; empty: <data_dir>/work",
        "a directory path",
    )


@attrs.frozen
class Config:
    http: HTTPSection = attrs.field(factory=HTTPSection)
    storage: StorageSection = attrs.field(factory=StorageSection)
    database: DatabaseSection = attrs.field(factory=DatabaseSection)
    auth: AuthSection = attrs.field(factory=AuthSection)
    ingest: IngestSection = attrs.field(factory=IngestSection)
    uploads: UploadsSection = attrs.field(factory=UploadsSection)
    s3: S3Section = attrs.field(factory=S3Section)
    cluster: ClusterSection = attrs.field(factory=ClusterSection)
    amqp: AmqpSection = attrs.field(factory=AmqpSection)
    webhooks: WebhooksSection = attrs.field(factory=WebhooksSection)
    events: EventsSection = attrs.field(factory=EventsSection)
    smtp: SmtpSection = attrs.field(factory=SmtpSection)
    push: PushSection = attrs.field(factory=PushSection)
    workers: WorkersSection = attrs.field(factory=WorkersSection)
    log: LogSection = attrs.field(factory=LogSection)

    metrics: MetricsSection = attrs.field(factory=MetricsSection)

    def __attrs_post_init__(self) -> None:
        if self.ingest.low_water >= self.ingest.high_water:
            raise settings.ConfigError(
                "[ingest] low_water: expected less than [ingest] high_water"
            )
        if self.push.vapid_private_key:
            try:
                private_key(self.push.vapid_private_key, "[push] vapid_private_key")
            except BadVapidKey as error:
                raise settings.ConfigError(str(error)) from None

    @property
    def shared_store(self) -> bool:
        """Whether several instances may share this database."""
        return self.database.url.startswith("postgresql")

    @property
    def awaits_copy(self) -> bool:
        """Whether a finished upload waits for its first copy on a node."""
        wanted = self.cluster.await_copy
        return wanted == "true" or (wanted == "auto" and self.shared_store)

    @property
    def push_subject(self) -> str:
        """The contact VAPID names: ``[push] subject``, else an https
        ``[http] public_url``, else the email sender."""
        if self.push.subject:
            return self.push.subject
        if self.http.public_url.startswith("https://"):
            return self.http.public_url
        return f"mailto:{self.smtp.sender}"

    @property
    def database_path(self) -> Path:
        return sqlite_path(self.database.url, self.storage.data_dir)

    @property
    def work_dir(self) -> Path:
        given = self.workers.work_dir
        return given if given != Path() else self.storage.data_dir / "work"


SAMPLE_HEADER = """\
# uploadd configuration: copy to uploadd.conf and uncomment what you change.
# twistd uploadd and uploadctl read --config FILE, else $UPLOADD_CONFIG, else
# the first of ./uploadd.conf, ~/.config/uploadd/uploadd.conf and
# /etc/uploadd/uploadd.conf that exists. Every key can also be set as
# UPLOADD_<SECTION>_<KEY> in the environment or as --<section>-<key> on the
# twistd command line; those win over this file.
"""


def sample() -> str:
    """The text of config/uploadd.conf.sample."""
    return settings.render_sample(Config, SAMPLE_HEADER)


#: Short names for the keys people set most, as options and environment names.
ALIASES = {
    "host": ("http", "host"),
    "port": ("http", "port"),
    "max_upload_size": ("http", "max_upload_size"),
    "data_dir": ("storage", "data_dir"),
}


def search_path(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """Where a config file is looked for when neither ``--config`` nor
    ``UPLOADD_CONFIG`` names one, first found first: the working directory,
    the user's config directory (``$XDG_CONFIG_HOME``, else ``~/.config``),
    then the system's."""
    user = environ.get("XDG_CONFIG_HOME") or (
        f"{environ['HOME']}/.config" if environ.get("HOME") else ""
    )
    found = [Path("uploadd.conf")]
    if user:
        found.append(Path(user) / "uploadd" / "uploadd.conf")
    found.append(Path("/etc/uploadd/uploadd.conf"))
    return tuple(found)


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    options: Mapping[tuple[str, str], str] | None = None,
    sources: dict[tuple[str, str], str] | None = None,
) -> Config:
    """The configuration from an INI file (``path``, ``UPLOADD_CONFIG`` or
    the first of :func:`search_path`), the environment and options;
    ``sources`` is filled with where each key not at its default was set."""
    environ = environ or {}
    return settings.load(
        Config,
        "UPLOADD",
        path,
        environ,
        options,
        ALIASES,
        search_path(environ),
        sources,
    )


if __name__ == "__main__":
    print(sample(), end="")
