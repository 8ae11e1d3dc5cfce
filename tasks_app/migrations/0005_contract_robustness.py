"""Account.shares_tasks_with: Accounts whose keys see the same Ark tasks."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0008_gateway")]

    operations = [
        migrations.AddField(
            model_name="account",
            name="shares_tasks_with",
            field=models.ManyToManyField(
                blank=True, editable=False, to="tasks_app.account", verbose_name="mirrors the same Ark tasks as"
            ),
        ),
    ]
