"""The task tally and the triggers that keep it (tasks_app/task_tally.py says how)."""

from django.db import migrations, models

from tasks_app import task_tally


def install(apps, schema_editor):
    task_tally.install(schema_editor)


def uninstall(apps, schema_editor):
    task_tally.uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0002_mirror_version")]

    operations = [
        migrations.CreateModel(
            name="TaskTally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("account_id", models.BigIntegerField()),
                ("status", models.CharField(max_length=16)),
                ("kind", models.CharField(max_length=8)),
                ("archive_state", models.CharField(max_length=16)),
                ("model", models.CharField(max_length=128)),
                ("day", models.DateField()),
                ("n", models.IntegerField()),
            ],
            options={"indexes": [models.Index(fields=["account_id", "day"], name="tally_account_day")]},
        ),
        migrations.RunPython(install, uninstall),
    ]
