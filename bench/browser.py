"""Browser upload benchmark: one file through the web page against curl -T.

Headless Chromium (Debian's chromium and chromedriver, through Selenium)
signs in to uploadd's page and is given the file, which the page sends with
tus-js-client as it ships (chunk size, parallel parts), timed by the page
from the choice of the file to the stored answer; a few other settings of
the page are measured beside it (set through localStorage "uploadd.tus").
The reference is ``curl -T`` of the same file to ``PUT /files/{name}``, one
streamed request, timed from start to exit. Same uploadd, same disk,
loopback; rounds interleaved, medians reported.

    .venv/bin/python bench/browser.py [--size 512M] [--rounds 3]

Writes bench/RESULTS.md (the browser section).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    HERE,
    MIB,
    Body,
    in_rounds,
    machine,
    median_rates,
    parse_size,
    server,
    uploadd,
    write_section,
)
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
#: The page as it ships (None), and other tus settings measured beside it.
VARIANTS: dict[str, dict[str, int] | None] = {
    "page as shipped": None,
    "1 part, 16 MiB chunks": {"chunkSize": 16 * MIB, "parallelParts": 1},
    "1 part, 64 MiB chunks": {"chunkSize": 64 * MIB, "parallelParts": 1},
    "1 part, 128 MiB chunks": {"chunkSize": 128 * MIB, "parallelParts": 1},
    "3 parts, 16 MiB chunks": {"chunkSize": 16 * MIB, "parallelParts": 3,
                               "parallelFrom": 0},
    "3 parts, 64 MiB chunks": {"chunkSize": 64 * MIB, "parallelParts": 3,
                               "parallelFrom": 0},
}  # fmt: skip


def chromium(profile: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--window-size=1280,900", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(DRIVER)), options=options)


def wait(check: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {within} s: {what}")
        time.sleep(0.02)


def sign_in(driver: WebDriver, base: str) -> None:
    driver.get(base + "/")
    wait(lambda: driver.find_element(By.ID, "username").is_displayed(), 30, "sign-in")
    driver.find_element(By.ID, "username").send_keys("bench")
    driver.find_element(By.ID, "password").send_keys("bench-password")
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    upload = driver.find_element(By.ID, "view-upload")
    wait(upload.is_displayed, 30, "the upload page")


def page_upload(
    driver: WebDriver, path: Path, settings: dict[str, int] | None
) -> float:
    """The page's seconds from the file's choice to its stored answer."""
    driver.execute_script(
        "if (arguments[0]) localStorage.setItem('uploadd.tus', arguments[0]);"
        "else localStorage.removeItem('uploadd.tus');"
        "document.getElementById('uploads').replaceChildren();",
        json.dumps(settings) if settings else None,
    )
    driver.find_element(By.ID, "picker").send_keys(str(path))
    # Waited for inside the page: asking from here every few milliseconds
    # would cost Chromium the CPU the upload needs.
    answer = driver.execute_async_script(STORED)
    if isinstance(answer, str):
        raise RuntimeError(answer)
    return float(answer)


#: The seconds the page took for the newest upload, once stored.
STORED = """
const done = arguments[arguments.length - 1];
const check = () => {
  const row = document.querySelector("#uploads li");
  if (row && row.classList.contains("failed")) done(`failed: ${row.textContent}`);
  else if (row && row.dataset.seconds) done(Number(row.dataset.seconds));
  else setTimeout(check, 50);
};
check();
"""


#: One XMLHttpRequest PUT of the whole file to /files, no tus: what the
#: browser itself manages (the file was given to the #raw-file input).
RAW_PUT = """
const done = arguments[arguments.length - 1];
const started = performance.now();
const request = new XMLHttpRequest();
request.open("PUT", "/files/raw.bin?renditions=none");
request.setRequestHeader("Authorization", `Bearer ${session.token}`);
request.onload = () => done(request.status === 201
  ? (performance.now() - started) / 1000 : `answered ${request.status}`);
request.onerror = () => done("failed");
request.send(document.getElementById("raw-file").files[0]);
"""


def raw_put(driver: WebDriver) -> float:
    answer = driver.execute_async_script(RAW_PUT)
    if isinstance(answer, str):
        raise RuntimeError(f"the browser's PUT {answer}")
    return float(answer)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def processes_of(profile: Path) -> list[int]:
    """The Chromium processes running on ``profile``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"--user-data-dir={profile}".encode() in command:
                found.append(int(entry.name))
    return found


def curl_upload(port: int, path: Path, token: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(path),
         "-H", f"Authorization: Bearer {token}",
         f"http://127.0.0.1:{port}/files/bench.bin"],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if done.stdout != "201":
        raise RuntimeError(f"curl -T answered {done.stdout}: {done.stderr}")
    return elapsed


def describe(settings: dict[str, int | None]) -> str:
    """The page's TUS_DEFAULTS in words (an infinite chunk comes as None)."""
    size = settings["chunkSize"]
    chunk = (
        "the whole file in one PATCH" if size is None else f"{size // MIB} MiB chunks"
    )
    parts, start = settings["parallelParts"] or 1, settings["parallelFrom"] or 0
    if parts <= 1:
        return f"1 part, {chunk}"
    return f"{parts} parts from {start // MIB} MiB, {chunk}"


def clean(work: Path) -> None:
    """Drop stored files between runs so the disk does not fill."""
    for folder in ("uploadd/files", "uploadd/uploads"):
        target = work / folder
        if target.exists():
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


RAW = "one XMLHttpRequest PUT"


def counted(
    name: str,
    run: Callable[[], float],
    client: list[int],
    server_pid: int,
    cpu: dict[str, list[tuple[float, float]]],
) -> Callable[[], float]:
    """``run``, recording the CPU seconds the client (Chromium's processes;
    curl, a child, is counted by this process) and uploadd spent on it."""

    def measured() -> float:
        pids = client if name != "curl -T" else []
        before = cpu_seconds(pids), cpu_seconds([server_pid]), children_cpu()
        seconds = run()
        after = cpu_seconds(pids), cpu_seconds([server_pid]), children_cpu()
        spent = after[0] - before[0] + after[2] - before[2]
        cpu.setdefault(name, []).append((spent, after[1] - before[1]))
        return seconds

    return measured


def children_cpu() -> float:
    """CPU seconds of this process's finished children (curl)."""
    usage = os.times()
    return usage.children_user + usage.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="512M")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if not (CHROMIUM.exists() and DRIVER.exists()):
        sys.exit("chromium and chromedriver are needed (make setup)")
    size = parse_size(args.size)
    work = Path(
        tempfile.mkdtemp(prefix="uploadd-bench-", dir=os.environ.get("BENCH_DIR"))
    )
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}
    shipped: dict[str, int | None] = {}
    try:
        path = work / "bench.bin"
        body = Body()
        with path.open("wb") as out:
            for offset in range(0, size, 8 * MIB):
                out.write(body.chunk(offset, min(8 * MIB, size - offset)))
        command, port_file, env, token_of = uploadd(work)
        with server(command, port_file, env) as (port, server_pid):
            token = token_of()
            profile = work / "chromium"
            driver = chromium(profile)
            try:
                sign_in(driver, f"http://127.0.0.1:{port}")
                shipped = driver.execute_script("return TUS_DEFAULTS")
                driver.execute_script(
                    "const input = document.createElement('input');"
                    "input.type = 'file'; input.id = 'raw-file'; input.hidden = true;"
                    "document.body.append(input);"
                )
                driver.find_element(By.ID, "raw-file").send_keys(str(path))
                driver.set_script_timeout(600)
                browser = processes_of(profile)
                runs: dict[str, Callable[[], float]] = {
                    "curl -T": lambda: curl_upload(port, path, token),
                    RAW: lambda: raw_put(driver),
                }
                for name, settings in VARIANTS.items():
                    runs[name] = lambda s=settings: page_upload(driver, path, s)  # type: ignore[misc]
                for name, run in runs.items():
                    runs[name] = counted(name, run, browser, server_pid, cpu)
                in_rounds(runs, args.rounds, size, times, lambda: clean(work))
            finally:
                driver.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rate = median_rates(times, size)
    curl = rate["curl -T"]
    page = rate["page as shipped"]
    gib = size / (1024 * MIB)

    def row(client: str, settings: str, name: str) -> str:
        spent = [statistics.median(c[i] for c in cpu[name]) / gib for i in (0, 1)]
        return (
            f"| {client} | {settings} | {rate[name]:.0f} | {rate[name] / curl:.2f}x "
            f"| {spent[0]:.1f} + {spent[1]:.1f} |"
        )

    table = [
        "| client | tus settings | MiB/s (median) | vs curl -T "
        "| CPU-s per GiB: client + uploadd |",
        "|---|---|---|---|---|",
        row("curl -T (`PUT /files/{name}`, one request)", "", "curl -T"),
        row("Chromium, one XMLHttpRequest `PUT /files/{name}`", "(no tus)", RAW),
    ]
    for name in VARIANTS:
        label = name
        if name == "page as shipped":
            label = f"**as shipped**: {describe(shipped)}"
        table.append(row("Chromium, the page", label, name))
    rounds = "; ".join(
        f"{name} " + ", ".join(f"{size / t / MIB:.0f}" for t in spent)
        for name, spent in times.items()
    )
    verdict = "met" if page >= 0.8 * curl else "not met"
    section = "\n".join(
        [
            f"## Browser uploads: {args.size} through the page",
            "",
            f"Command: `.venv/bin/python bench/browser.py --size {args.size} "
            f"--rounds {args.rounds}`",
            "",
            f"Machine: {machine()}; headless Chromium (Debian) and curl on the "
            "same host as uploadd, over loopback; uploadd hashes every byte "
            "(sha256 + md5) and fsyncs. The page is timed by itself, from the "
            "file's choice (its fingerprint and the look for an upload to "
            "continue included) to the stored answer; curl from start to exit. "
            "The last column is the CPU time spent per GiB sent, by the client "
            "(curl, or all of Chromium's processes) and by uploadd (medians).",
            "",
            *table,
            "",
            f"The page as shipped reaches {page / curl:.2f}x of curl -T "
            f"(target 0.8x: {verdict}).",
            "",
            f"Rounds (MiB/s): {rounds}",
            "",
        ]
    )
    write_section(Path(args.output), "## Browser uploads", section)
    print(section)


if __name__ == "__main__":
    main()
