from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tasks_app", "0012_alerts"),
    ]

    operations = [
        migrations.CreateModel(
            name="ModelPrice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("model", models.CharField(max_length=128, unique=True, verbose_name="model")),
                (
                    "cny_per_million_tokens",
                    models.DecimalField(decimal_places=4, max_digits=12, verbose_name="CNY per million tokens"),
                ),
            ],
            options={
                "verbose_name": "model price",
                "verbose_name_plural": "model prices",
                "ordering": ["model"],
            },
        ),
        migrations.AddIndex(
            model_name="artifact",
            index=models.Index(
                condition=models.Q(("state", "archived")), fields=["archived_at"], name="artifact_archived_at"
            ),
        ),
    ]
