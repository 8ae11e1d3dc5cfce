# The gateway: personal API tokens and the tasks created through them.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks_app', '0006_security'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, verbose_name='name')),
                ('token_hash', models.CharField(editable=False, max_length=64, unique=True)),
                ('hint', models.CharField(editable=False, max_length=16, verbose_name='starts with')),
                ('read_only', models.BooleanField(default=False, verbose_name='read-only')),
                ('expires_at', models.DateTimeField(blank=True, null=True, verbose_name='expires')),
                ('allowed_models', models.JSONField(blank=True, default=list, verbose_name='allowed models')),
                ('daily_token_budget', models.BigIntegerField(blank=True, null=True, verbose_name='tokens per day')),
                ('monthly_token_budget', models.BigIntegerField(blank=True, null=True, verbose_name='tokens per month')),
                ('requests_per_minute', models.PositiveIntegerField(default=600, verbose_name='requests per minute')),
                ('created', models.DateTimeField(auto_now_add=True, verbose_name='created')),
                ('last_used_at', models.DateTimeField(blank=True, null=True, verbose_name='last used')),
                ('revoked_at', models.DateTimeField(blank=True, null=True, verbose_name='revoked')),
                ('accounts', models.ManyToManyField(related_name='api_tokens', to='tasks_app.account', verbose_name='accounts')),
                ('create_account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tasks_app.account', verbose_name='account for creates')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL, verbose_name='user')),
            ],
            options={
                'verbose_name': 'API token',
                'verbose_name_plural': 'API tokens',
                'ordering': ['-created'],
            },
        ),
        migrations.CreateModel(
            name='GatewayTask',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('endpoint', models.CharField(db_index=True, max_length=128)),
                ('callback_url', models.TextField(blank=True)),
                ('site_url', models.CharField(blank=True, max_length=300)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('task', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='gateway_origin', to='tasks_app.task')),
                ('token', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='tasks', to='tasks_app.apitoken')),
            ],
            options={
                'indexes': [models.Index(fields=['token', 'created'], name='gateway_task_token_created')],
            },
        ),
    ]
