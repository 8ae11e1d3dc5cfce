"""The list reads the tasks table directly now: drop the status-count tally (its table
and triggers) and the list cache's version counter. The SQL is frozen here: migrations
never import app modules.
"""

from django.db import migrations

_POSTGRESQL = [
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_insert ON tasks_app_task",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_delete ON tasks_app_task",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_update ON tasks_app_task",
    "DROP FUNCTION IF EXISTS tasks_app_tally_inserted()",
    "DROP FUNCTION IF EXISTS tasks_app_tally_deleted()",
    "DROP FUNCTION IF EXISTS tasks_app_tally_updated()",
    "DROP SEQUENCE IF EXISTS tasks_app_mirror_version_seq",
]
_SQLITE = [
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_insert",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_delete",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_update",
    "DROP TABLE IF EXISTS tasks_app_mirror_version",
]


def drop_triggers_and_counter(apps, schema_editor):
    for sql in _POSTGRESQL if schema_editor.connection.vendor == "postgresql" else _SQLITE:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0003_task_tally")]

    operations = [
        # Not reversible into the old machinery: going back recreates the empty table only.
        migrations.RunPython(drop_triggers_and_counter, migrations.RunPython.noop),
        migrations.DeleteModel(name="TaskTally"),
    ]
