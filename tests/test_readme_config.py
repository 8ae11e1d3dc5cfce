"""The README's configuration table names every environment variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# envstr("X"), envbool("X", ...), os.environ.get("X"), dj_database_url's env="X", make run's env.get("X").
READ = re.compile(r'(?:env(?:str|bool|int|float|list)\(\s*|environ(?:\.get)?\(|environ\[|getenv\(|\benv\.get\(|env=)"([A-Z][A-Z0-9_]+)"')


def _variables_read() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "arkdash").glob("*.py"):
        names |= set(READ.findall(path.read_text()))
    names |= set(READ.findall((ROOT / "bin" / "run.py").read_text())) - {"DJANGO_SETTINGS_MODULE"}
    return names - {"DJANGO_SETTINGS_MODULE"}


def _variables_documented() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ", 1)[0])}


def test_it_documents_every_environment_variable_the_settings_read() -> None:
    read = _variables_read()
    assert len(read) > 60  # the pattern still finds them
    assert sorted(read - _variables_documented()) == []


def test_it_documents_no_variable_that_nothing_reads() -> None:
    # Read by boto3 and by docker-compose.yml, not by ArkDash's settings.
    read_elsewhere = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ARKDASH_DOMAIN"}
    assert sorted(_variables_documented() - _variables_read() - read_elsewhere) == []
