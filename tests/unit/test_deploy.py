"""The deployment files in config/: the systemd units and the Containerfile
run commands twistd accepts, with settings the daemons know, and the units
pass ``systemd-analyze verify`` where systemd is installed."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# twistd's own options on Unix (twisted.scripts.twistd picks this one).
from twisted.scripts._twistd_unix import ServerOptions

from noded.config import NodeConfig
from noded.config import load_config as load_node_config
from noded.settings import keys
from uploadd.config import ROLES, Config, load_config

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "config" / "systemd"
CONTAINERFILE = REPO / "config" / "Containerfile"
UNITS = ("uploadd.service", "noded.service", "uploadd-worker@.service")
#: Where the units expect the install and its settings (README: Deploying).
INSTALLED = "/opt/uploadd/bin/twistd"
SAMPLES = {
    "/etc/uploadd/uploadd.conf": REPO / "config" / "uploadd.conf.sample",
    "/etc/uploadd/noded.conf": REPO / "config" / "noded.conf.sample",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No UPLOADD_ or NODED_ settings from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(("UPLOADD_", "NODED_")):
            monkeypatch.delenv(name)
    yield


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def parse_twistd(arguments: list[str]) -> ServerOptions:
    """twistd's own parser on ``arguments`` (after the program): UsageError
    for an option that does not exist or a value a daemon refuses."""
    options = ServerOptions()
    options.parseOptions(arguments)
    return options


def exec_start(name: str, role: str = "transcode") -> list[str]:
    """A unit's ExecStart as twistd's arguments, its config files swapped for
    the samples they are made from and %i for ``role``."""
    command = shlex.split(unit(name)["Service"]["ExecStart"].replace("%i", role))
    assert command[0] == INSTALLED
    swapped = []
    for argument in command[1:]:
        flag, _, value = argument.partition("=")
        swapped.append(f"{flag}={SAMPLES[value]}" if value in SAMPLES else argument)
    return swapped


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_runs_a_command_twistd_accepts(
    name: str, clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ExecStart parses with twistd's own options and the daemon's (each
    --flag exists, each value is accepted), in the foreground with no pid
    file, on the data directory the unit makes writable."""
    monkeypatch.setenv("UPLOADD_AMQP_URL", "amqp://guest:guest@mq:5672/")
    service = unit(name)["Service"]
    for role in ROLES if "@" in name else ("",):
        options = parse_twistd(exec_start(name, role))
        assert options["nodaemon"]
        assert options["pidfile"] == ""
        daemon = options.subOptions
        if daemon.subCommand == "worker":
            daemon = daemon.subOptions
            assert daemon["role"] == role
        data_dir = str(
            daemon.config.node.data_dir
            if options.subCommand == "noded"
            else daemon.config.storage.data_dir
        )
        assert data_dir == f"/var/lib/{service['StateDirectory']}"
        assert data_dir in service["ReadWritePaths"].split()
        assert service["WorkingDirectory"] == data_dir


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_runs_simple_as_its_own_user_hardened(name: str) -> None:
    """Type=simple, a dedicated user (never root), a state directory of its
    own mode 0700, and the hardening every unit shares."""
    service = unit(name)["Service"]
    assert service["Type"] == "simple"
    assert service["User"] in ("uploadd", "noded")
    assert service["Group"] == service["User"]
    assert service["StateDirectoryMode"] == "0700"
    for key, value in HARDENING.items():
        assert service[key] == value, key
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_the_users_the_units_run_as_are_declared_for_systemd_sysusers(
    tmp_path: Path,
) -> None:
    """uploadd.sysusers declares every unit's user; systemd-sysusers (in dry
    run, on an empty root) would create them, where it is installed."""
    declared = {
        line.split()[1]
        for line in (SYSTEMD / "uploadd.sysusers").read_text().splitlines()
        if line.startswith("u ")
    }
    assert {unit(name)["Service"]["User"] for name in UNITS} == declared
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        return
    (tmp_path / "etc").mkdir()
    done = subprocess.run(
        [
            sysusers,
            "--dry-run",
            f"--root={tmp_path}",
            str(SYSTEMD / "uploadd.sysusers"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for user in declared:
        assert f"Creating user '{user}'" in done.stderr + done.stdout
    assert list((tmp_path / "etc").iterdir()) == []


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd)",
)
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify finds nothing to say about the units (an
    unknown key, a bad value, a missing executable): checked on copies
    whose twistd is this installation's and the template instantiated."""
    twistd = Path(sys.executable).parent / "twistd"
    copies = []
    for name in UNITS:
        copy = tmp_path / name.replace("@.", "@transcode.")
        copy.write_text((SYSTEMD / name).read_text().replace(INSTALLED, str(twistd)))
        copies.append(str(copy))
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    done = subprocess.run(
        [analyze, "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# -- the Containerfile ---------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continued lines joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def instruction(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in instruction("ENV"):
        env.update(dict(shlex.split(pair)[0].split("=", 1) for pair in rest.split()))
    return env


def test_the_image_is_debian_python_slim_with_rsync_as_a_user() -> None:
    """Debian's python:3.11-slim, rsync (and the transcode tools) installed,
    and the daemons run as a user of their own."""
    [base] = instruction("FROM")
    assert base.removeprefix("docker.io/library/") == "python:3.11-slim"
    installs = " ".join(r for r in instruction("RUN") if "apt-get install" in r)
    assert {"rsync", "ffmpeg", "poppler-utils"} <= set(installs.split())
    [user] = instruction("USER")
    assert user not in ("root", "0")
    for source in instruction("COPY"):
        for path in source.split()[:-1]:
            assert (REPO / path).exists(), path


def test_the_image_settings_are_ones_the_daemons_know(
    clean_environment: None,
) -> None:
    """Every UPLOADD_ and NODED_ variable the image sets is a setting of that
    daemon with a value it accepts: both listen on every address, log JSON
    and keep their data in the image's volumes."""
    env = image_environment()
    uploadd = load_config(environ=env)
    node = load_node_config(environ=env)
    assert uploadd.http.host == node.amp.host == node.http.host == "0.0.0.0"
    assert node.rsync.host == "0.0.0.0"
    assert uploadd.log.format == node.log.format == "json"
    [volumes] = instruction("VOLUME")
    assert json.loads(volumes) == [
        str(uploadd.storage.data_dir),
        str(node.node.data_dir),
    ]
    known = {k.environment("UPLOADD") for k in keys(Config)} | {
        k.environment("NODED") for k in keys(NodeConfig)
    }
    aliases = {"UPLOADD_DATA_DIR", "NODED_DATA_DIR"}
    ours = {name for name in env if name.startswith(("UPLOADD_", "NODED_"))}
    assert ours <= known | aliases


def test_the_image_exposes_the_daemons_default_ports() -> None:
    """EXPOSE lists uploadd's HTTP port and a node's AMP, rsync and download
    ports, as the daemons' defaults have them."""
    [exposed] = instruction("EXPOSE")
    node = NodeConfig()
    defaults = [Config().http.port, node.amp.port, node.rsync.port, node.http.port]
    assert [int(port) for port in exposed.split()] == defaults


def test_the_image_commands_are_ones_twistd_accepts(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENTRYPOINT + CMD (uploadd), and the same entry point running a node
    (noded --node-id=n1), parse with twistd's options under the image's
    environment: in the foreground, without a pid file."""
    for name, value in image_environment().items():
        monkeypatch.setenv(name, value)
    [entrypoint], [command] = instruction("ENTRYPOINT"), instruction("CMD")
    program, *arguments = json.loads(entrypoint)
    assert program == "twistd"
    for daemon in (json.loads(command), ["noded", "--node-id=n1"]):
        options = parse_twistd([*arguments, *daemon])
        assert options.subCommand == daemon[0]
        assert options["nodaemon"] and options["pidfile"] == ""


def test_the_image_checks_health_on_the_health_route() -> None:
    """HEALTHCHECK asks HEALTH_URL, by default uploadd's /health on its port."""
    [check] = instruction("HEALTHCHECK")
    assert "HEALTH_URL" in check and "urlopen" in check
    url = image_environment()["HEALTH_URL"]
    assert url == f"http://127.0.0.1:{Config().http.port}/health"
