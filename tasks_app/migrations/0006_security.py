"""Base URL changes are written to the audit log (a new audit action)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tasks_app", "0004_drop_list_cache"),
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
