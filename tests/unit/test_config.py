"""Configuration: defaults, layering, aliases, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.python import usage

from noded.settings import ConfigError, parse_duration, parse_size
from uploadd.config import load_config, sample, search_path
from uploadd.tap import Options

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_loopback_8080_and_var_uploadd() -> None:
    """With nothing configured uploadd listens on 127.0.0.1:8080, data in var/."""
    config = load_config(environ={})
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8080)
    assert config.storage.data_dir == Path("var/uploadd")
    assert config.auth.secret == ""
    assert config.database_path == Path("var/uploadd/uploadd.sqlite3")


def test_file_then_environment_then_options(tmp_path: Path) -> None:
    """An option beats the environment, which beats the file."""
    ini = tmp_path / "u.conf"
    ini.write_text("[http]\nport = 9000\nmax_upload_size = 1G\nhost = localhost\n")
    config = load_config(str(ini), environ={})
    assert config.http.port == 9000 and config.http.max_upload_size == 1024**3
    assert config.http.host == "127.0.0.1"
    env = {"UPLOADD_HTTP_PORT": "9001", "UPLOADD_MAX_UPLOAD_SIZE": "5M"}
    config = load_config(str(ini), environ=env)
    assert config.http.port == 9001 and config.http.max_upload_size == 5 * 1024**2
    config = load_config(str(ini), environ=env, options={("http", "port"): "9002"})
    assert config.http.port == 9002


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    """UPLOADD_CONFIG names the file when --config is not given."""
    ini = tmp_path / "u.conf"
    ini.write_text("[storage]\ndata_dir = /srv/files\n")
    config = load_config(environ={"UPLOADD_CONFIG": str(ini)})
    assert config.storage.data_dir == Path("/srv/files")


def test_the_search_path_is_here_then_the_user_then_the_system() -> None:
    """Without --config or UPLOADD_CONFIG a file is looked for in the working
    directory, the user's config directory, then /etc/uploadd."""
    system = Path("/etc/uploadd/uploadd.conf")
    assert search_path({"HOME": "/home/u"}) == (
        Path("uploadd.conf"),
        Path("/home/u/.config/uploadd/uploadd.conf"),
        system,
    )
    assert search_path({"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg"})[1] == Path(
        "/cfg/uploadd/uploadd.conf"
    )
    assert search_path({}) == (Path("uploadd.conf"), system)


def test_both_loaders_take_the_first_file_found_and_an_explicit_one_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uploadctl's load_config and twistd uploadd's options read the same
    file: ./uploadd.conf before the user's; UPLOADD_CONFIG and --config win."""
    home, here = tmp_path / "home", tmp_path / "here"
    user = home / ".config" / "uploadd" / "uploadd.conf"
    user.parent.mkdir(parents=True)
    here.mkdir()
    user.write_text("[http]\nport = 9001\n")
    monkeypatch.chdir(here)
    for name in ("UPLOADD_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))

    def ports() -> tuple[int, int]:
        options = Options()
        options.parseOptions([])
        return load_config(environ=dict(os.environ)).http.port, options.config.http.port

    assert ports() == (9001, 9001)
    (here / "uploadd.conf").write_text("[http]\nport = 9002\n")
    assert ports() == (9002, 9002)
    named = tmp_path / "named.conf"
    named.write_text("[http]\nport = 9003\n")
    monkeypatch.setenv("UPLOADD_CONFIG", str(named))
    assert ports() == (9003, 9003)
    sources: dict[tuple[str, str], str] = {}
    assert load_config(str(user), dict(os.environ), sources=sources).http.port == 9001
    assert sources == {("http", "port"): str(user)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[http]\nport = eighty\n", "[http] port (from {f}): expected an integer"),
        ("[http]\nprot = 80\n", "unknown key [http] prot in {f}; [http] takes:"),
        ("[web]\nport = 80\n", "unknown section [web] in {f}"),
        ("[http]\nmax_upload_size = lots\n", "expected a size in bytes"),
        ("[auth]\nsecret = short\n", "[auth] secret (from {f}): expected a string of"),
        ("port = 80\n", "is not INI"),
    ],
)
def test_bad_files_name_the_key_and_the_expected_form(
    tmp_path: Path, text: str, message: str
) -> None:
    """Every mistake in a file stops loading with a message naming it."""
    ini = tmp_path / "u.conf"
    ini.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(ini), environ={})
    assert message.format(f=ini) in str(caught.value)
    assert "'short'" not in str(caught.value)  # secrets are never echoed


def test_unknown_and_bad_environment_variables_are_named() -> None:
    """A misspelt UPLOADD_ variable is an error, as is a bad value."""
    with pytest.raises(ConfigError, match="UPLOADD_HTTP_PROT"):
        load_config(environ={"UPLOADD_HTTP_PROT": "1"})
    with pytest.raises(ConfigError, match=r"\(from UPLOADD_HTTP_PORT\)"):
        load_config(environ={"UPLOADD_HTTP_PORT": "70000"})
    assert load_config(environ={"OTHER_THING": "x"}).http.port == 8080


def test_twistd_options_override_and_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    """--http-port and its alias --port both reach the config; bad ones fail."""
    monkeypatch.delenv("UPLOADD_CONFIG", raising=False)
    options = Options()
    options.parseOptions(["--port", "9100", "--ingest-high-water", "32M"])
    assert options.config.http.port == 9100
    assert options.config.ingest.high_water == 32 * 1024**2
    with pytest.raises(usage.UsageError, match=r"\[http\] port \(from --http-port\)"):
        Options().parseOptions(["--http-port", "-1"])


def test_the_shipped_sample_lists_every_key() -> None:
    """config/uploadd.conf.sample is the schema's own rendering, and loads."""
    path = REPO / "config" / "uploadd.conf.sample"
    assert path.read_text() == sample()
    assert load_config(str(path), environ={}) == load_config(environ={})


@pytest.mark.parametrize(
    ("text", "size"),
    [("10", 10), ("64k", 65536), ("512M", 512 * 1024**2), ("2GiB", 2 * 1024**3)],
)
def test_a_size_is_read_with_its_binary_suffix(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30), ("500ms", 0.5), ("5m", 300), ("1h", 3600)]
)
def test_a_duration_is_read_with_its_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_the_shipped_noded_sample_lists_every_key() -> None:
    """config/noded.conf.sample is noded's schema rendered, and loads."""
    from noded.config import load_config as load_node_config
    from noded.config import sample as node_sample

    path = REPO / "config" / "noded.conf.sample"
    assert path.read_text() == node_sample()
    assert load_node_config(str(path), environ={}) == load_node_config(environ={})


def test_push_settings_check_the_key_without_showing_it() -> None:
    """[push] vapid_private_key must be a P-256 key in base64url (the error
    names the key, never its value); the subject is a mailto: or https:
    URL, by default an https public_url or the email sender."""
    good = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
    config = load_config(environ={"UPLOADD_PUSH_VAPID_PRIVATE_KEY": good})
    assert config.push.vapid_private_key == good
    assert config.push_subject == "mailto:uploadd@localhost"
    bad = "Z" * 44
    with pytest.raises(ConfigError, match=r"\[push\] vapid_private_key") as caught:
        load_config(environ={"UPLOADD_PUSH_VAPID_PRIVATE_KEY": bad})
    assert bad not in str(caught.value)
    with pytest.raises(ConfigError, match=r"\[push\] subject"):
        load_config(environ={"UPLOADD_PUSH_SUBJECT": "ops@example.com"})
    public = {("http", "public_url"): "https://files.example.com"}
    assert load_config(environ={}, options=public).push_subject == (
        "https://files.example.com"
    )
    given = {**public, ("push", "subject"): "mailto:ops@example.com"}
    assert load_config(environ={}, options=given).push_subject == (
        "mailto:ops@example.com"
    )


def test_the_s3_listener_is_off_by_default_and_set_like_every_section() -> None:
    """[s3] starts disabled on loopback port 9000 for us-east-1 with S3's
    part rules; --s3-<key> options set it, and a region or part count S3
    would not take is refused by name."""
    config = load_config(environ={})
    assert not config.s3.enabled
    assert config.s3.endpoint == "tcp:9000:interface=127.0.0.1"
    assert (config.s3.region, config.s3.cors_origins) == ("us-east-1", frozenset())
    assert (config.s3.min_part, config.s3.max_parts) == (5 * 1024**2, 10_000)
    assert config.s3.presign_max_expiry == 7 * 24 * 3600
    options = Options()
    options.parseOptions(
        ["--s3-enabled=true", "--s3-endpoint=tcp:0:interface=127.0.0.1"]
    )
    assert options.config.s3.enabled
    assert options.config.s3.endpoint == "tcp:0:interface=127.0.0.1"
    with pytest.raises(ConfigError, match=r"\[s3\] max_parts"):
        load_config(environ={"UPLOADD_S3_MAX_PARTS": "10001"})
    with pytest.raises(ConfigError, match=r"\[s3\] region"):
        load_config(environ={"UPLOADD_S3_REGION": "US East"})
    with pytest.raises(ConfigError, match=r"\[s3\] presign_max_expiry"):
        load_config(environ={"UPLOADD_S3_PRESIGN_MAX_EXPIRY": "8d"})
