"""`bot paper-exchange` as a real process: the README's ccxt script trades against it; bad input exits 2."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def exchange_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "paper-exchange",
            "--accounts",
            str(ROOT / "config/paper-accounts.json"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    assert started == {
        "event": "paper_exchange_started",
        "url": f"http://127.0.0.1:{port}",
        "accounts": ["lead", "alice", "bob", "carol"],
    }
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def readme_script() -> str:
    text = (ROOT / "README.md").read_text()
    (script,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return str(script)


def test_readme_script_trades_against_the_process_then_sigterm_exits_0(
    exchange_process: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = exchange_process
    script = readme_script().replace("http://127.0.0.1:8900", f"http://127.0.0.1:{port}")
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["closed 0.002 50000.0", "BTC/USDT:USDT 0.002 50000.0", "999.95"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_readme_opens_with_the_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks[0].strip() == "pip install . && bot demo"
    assert blocks[1].strip() == "pip install '.[test]' && python -m pytest"
    ci = (ROOT / ".ci/run").read_text()
    assert "pip install '.[test]' && python -m pytest" in ci


def test_bad_accounts_file_exits_2_and_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "accounts.json"
    bad.write_text(
        json.dumps(
            {
                "accounts": [
                    {"name": "x", "api_key": "short", "api_secret": "long-enough-1", "email": "x@p", "usdt": "-5"}
                ]
            }
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "bot", "paper-exchange", "--accounts", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert "accounts.0.api_key" in run.stderr and "accounts.0.usdt" in run.stderr
    assert "long-enough-1" not in run.stderr  # secrets never echoed
    missing = subprocess.run(
        [sys.executable, "-m", "bot", "paper-exchange", "--accounts", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert missing.returncode == 2 and "cannot read accounts file" in missing.stderr
