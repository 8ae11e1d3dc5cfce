"""What every benchmark script shares: the machine line, loopback ports, docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import socket
import time
from pathlib import Path

from harness.services import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"

__all__ = ["DOCS", "free_port", "machine_summary", "postgres_version", "wait_for_port", "write_docs_section"]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def machine_summary() -> str:
    """CPU model, CPU count, memory and Python version, for the line under each heading."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{memory}; Python {platform.python_version()}"


def postgres_version(server_url: str) -> str:
    """The server's version number, e.g. "15.20", from a URL without a database name."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres") as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def write_docs_section(heading: str, section: str) -> None:
    """Replace the `heading` section of docs/benchmarks.md, leaving the others alone."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = section.rstrip("\n") + "\n\n"  # a blank line before the next section
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text.rstrip("\n") + "\n")
