# Names the admin shows for these models, translatable (issue 15). No schema change.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0005_contract_robustness")]

    operations = [
        migrations.AlterModelOptions(
            name="account",
            options={"ordering": ["name"], "verbose_name": "account", "verbose_name_plural": "accounts"},
        ),
        migrations.AlterModelOptions(
            name="auditentry",
            options={"ordering": ["-created", "-id"], "verbose_name": "audit entry",
                     "verbose_name_plural": "audit entries"},
        ),
        migrations.AlterModelOptions(
            name="membership",
            options={"ordering": ["account__name", "user__username"], "verbose_name": "membership",
                     "verbose_name_plural": "memberships"},
        ),
    ]
