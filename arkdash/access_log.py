"""gunicorn's access log, without the secret in Ark's callback addresses.

An account's callback address holds its secret (/hooks/ark/<secret>/): whoever reads it
can post callbacks for that account. Django's own logging leaves those requests out
(tasks_app/views_hooks.py); gunicorn logs every request line. This logger class writes
each request with the secret replaced, wherever the address shows (request line, path,
referer). Every gunicorn command names it: --logger-class arkdash.access_log.Logger.
"""

from __future__ import annotations

import re

from gunicorn import glogging

CALLBACK_SECRET = re.compile(r"(/hooks/ark/)[^/?#\s\"]+")
REDACTED = r"\1[secret]"


def without_secrets(value: object) -> object:
    return CALLBACK_SECRET.sub(REDACTED, value) if isinstance(value, str) else value


class Logger(glogging.Logger):
    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: without_secrets(value) for name, value in atoms.items()}
