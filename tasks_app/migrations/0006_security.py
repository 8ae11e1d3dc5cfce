# Issue 19 (security hardening): base URL changes are written to the audit log.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tasks_app", "0003_task_tally"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("cancel", "cancel"),
                    ("delete", "delete"),
                    ("bulk_cancel", "bulk cancel"),
                    ("base_url", "change base URL"),
                ],
                max_length=16,
                verbose_name="action",
            ),
        ),
    ]
