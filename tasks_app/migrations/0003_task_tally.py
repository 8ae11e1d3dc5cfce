"""Historical: the status-count tally table. Its triggers were installed here once; 0004
drops the table and, on databases that have them, the triggers.
"""

from django.db import migrations, models


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
    ]
