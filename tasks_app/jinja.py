"""The Jinja2 environment for the list's hot parts (rows, chips, pager: list_parts.py, row_html.py).

The list page's frame and every other page are Django templates. The parts that change
with the mirror are rendered for every list view and poll answer, and Jinja2 compiles a
template to Python: about a tenth of Django's template time for the same output. Their
texts are translated in Python (gettext), where makemessages finds them.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from django.conf import settings


@lru_cache(maxsize=8)
def template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in settings.TEMPLATES[0]["DIRS"]]),
        autoescape=True,  # as Django's: every value escaped unless marked safe
        undefined=jinja2.StrictUndefined,  # a misspelt name fails loudly, not as an empty cell
    )
