"""The mirror's version counter (tasks_app/mirror_version.py says how it moves).

Not a model: a sequence on PostgreSQL, a one-row table elsewhere. Test-database flushes
and `manage.py flush` touch model tables only, so the counter is never reset to a number
a cached page was stored under.
"""

from django.db import migrations

from tasks_app.mirror_version import SEQUENCE, TABLE


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
    else:
        schema_editor.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, n bigint NOT NULL)")
        schema_editor.execute(f"INSERT INTO {TABLE} (id, n) VALUES (1, 1)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")
    else:
        schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
