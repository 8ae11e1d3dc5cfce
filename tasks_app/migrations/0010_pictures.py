from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):

    dependencies = [
        ("tasks_app", "0009_list_model_status_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="Picture",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("source_output", models.CharField(choices=[("video", "video (mp4)"), ("last_frame", "last frame (png)"), ("model_zip", "3D model (zip)"), ("model_file", "3D model (extracted)")], max_length=16)),
                ("state", models.CharField(choices=[("ready", "ready"), ("placeholder", "placeholder")], max_length=16)),
                ("reason", models.TextField(blank=True, help_text="Why a placeholder stands in for the picture.")),
                ("storage_key", models.CharField(max_length=500)),
                ("content_type", models.CharField(max_length=100)),
                ("size", models.PositiveIntegerField()),
                ("width", models.PositiveIntegerField()),
                ("height", models.PositiveIntegerField()),
                ("sha256", models.CharField(max_length=64)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("updated", models.DateTimeField(auto_now=True)),
                ("source", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="tasks_app.artifact")),
                ("task", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="picture", to="tasks_app.task")),
            ],
        ),
    ]
