# Alerts: channels, rules, the events found in the mirror and their deliveries; the lost-output index.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks_app', '0011_archive_control'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertChannel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, verbose_name='name')),
                ('kind', models.CharField(choices=[('webhook', 'webhook (signed JSON)'), ('feishu', 'Feishu / Lark custom bot'), ('dingtalk', 'DingTalk robot'), ('slack', 'Slack-compatible incoming webhook'), ('email', 'e-mail')], max_length=16, verbose_name='kind')),
                ('target_encrypted', models.TextField(editable=False)),
                ('target_hint', models.CharField(editable=False, max_length=200, verbose_name='target')),
                ('secret_encrypted', models.TextField(blank=True, editable=False)),
                ('enabled', models.BooleanField(default=True, verbose_name='enabled')),
                ('created', models.DateTimeField(auto_now_add=True, verbose_name='created')),
            ],
            options={
                'verbose_name': 'alert channel',
                'verbose_name_plural': 'alert channels',
                'ordering': ['account__name', 'name'],
            },
        ),
        migrations.CreateModel(
            name='AlertEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=200, unique=True)),
                ('kind', models.CharField(choices=[('task_failed', 'a task failed'), ('output_lost', 'an output was lost'), ('output_at_risk', 'an output is at risk'), ('sync_down', 'sync is failing'), ('queue_near_cap', "queued tasks near Ark's cap")], max_length=20, verbose_name='event')),
                ('threshold', models.PositiveIntegerField(blank=True, null=True)),
                ('occurred_at', models.DateTimeField(verbose_name='occurred')),
                ('cleared_at', models.DateTimeField(blank=True, null=True)),
                ('summary', models.TextField(verbose_name='summary')),
                ('details', models.JSONField(blank=True, default=dict)),
                ('created', models.DateTimeField(auto_now_add=True, db_index=True, verbose_name='recorded')),
            ],
            options={
                'verbose_name': 'alert event',
                'verbose_name_plural': 'alert events',
                'ordering': ['-created', '-id'],
            },
        ),
        migrations.CreateModel(
            name='AlertRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event', models.CharField(choices=[('task_failed', 'a task failed'), ('output_lost', 'an output was lost'), ('output_at_risk', 'an output is at risk'), ('sync_down', 'sync is failing'), ('queue_near_cap', "queued tasks near Ark's cap")], max_length=20, verbose_name='event')),
                ('error_code', models.CharField(blank=True, max_length=200, verbose_name='error code')),
                ('model', models.CharField(blank=True, max_length=128, verbose_name='model')),
                ('at_risk_hours', models.PositiveIntegerField(default=2, verbose_name='hours left')),
                ('sync_down_minutes', models.PositiveIntegerField(default=10, verbose_name='minutes failing')),
                ('queue_threshold', models.PositiveIntegerField(default=100, verbose_name='queued tasks')),
                ('enabled', models.BooleanField(default=True, verbose_name='enabled')),
                ('created', models.DateTimeField(auto_now_add=True, verbose_name='created')),
            ],
            options={
                'verbose_name': 'alert rule',
                'verbose_name_plural': 'alert rules',
                'ordering': ['account__name', 'event', 'id'],
            },
        ),
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'verbose_name': 'alert delivery',
                'verbose_name_plural': 'alert deliveries',
            },
        ),
        migrations.CreateModel(
            name='Notification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('pending', 'pending'), ('sending', 'sending'), ('retrying', 'failed, will retry'), ('sent', 'sent'), ('failed', 'failed')], default='pending', max_length=16, verbose_name='status')),
                ('is_test', models.BooleanField(default=False, verbose_name='test')),
                ('event_count', models.PositiveIntegerField(default=0, verbose_name='events')),
                ('attempts', models.PositiveIntegerField(default=0, verbose_name='attempts')),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('claim_token', models.CharField(blank=True, editable=False, max_length=64)),
                ('claimed_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('response_status', models.PositiveIntegerField(blank=True, null=True, verbose_name='answer status')),
                ('response_body', models.TextField(blank=True, verbose_name='answer')),
                ('created', models.DateTimeField(auto_now_add=True, db_index=True, verbose_name='created')),
                ('sent_at', models.DateTimeField(blank=True, null=True, verbose_name='sent')),
            ],
            options={
                'verbose_name': 'alert notification',
                'verbose_name_plural': 'alert notifications',
                'ordering': ['-created', '-id'],
            },
        ),
        migrations.CreateModel(
            name='ScanMark',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=50, unique=True)),
                ('until', models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name='artifact',
            index=models.Index(condition=models.Q(('state', 'lost')), fields=['id'], name='artifact_lost'),
        ),
        migrations.AddField(
            model_name='alertchannel',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alert_channels', to='tasks_app.account', verbose_name='account'),
        ),
        migrations.AddField(
            model_name='alertchannel',
            name='created_by',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='alertevent',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tasks_app.account'),
        ),
        migrations.AddField(
            model_name='alertevent',
            name='artifact',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tasks_app.artifact'),
        ),
        migrations.AddField(
            model_name='alertevent',
            name='task',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tasks_app.task'),
        ),
        migrations.AddField(
            model_name='alertrule',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alert_rules', to='tasks_app.account', verbose_name='account'),
        ),
        migrations.AddField(
            model_name='alertrule',
            name='channel',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rules', to='tasks_app.alertchannel', verbose_name='channel'),
        ),
        migrations.AddField(
            model_name='delivery',
            name='channel',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='tasks_app.alertchannel'),
        ),
        migrations.AddField(
            model_name='delivery',
            name='event',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='tasks_app.alertevent'),
        ),
        migrations.AddField(
            model_name='notification',
            name='channel',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='tasks_app.alertchannel', verbose_name='channel'),
        ),
        migrations.AddField(
            model_name='delivery',
            name='notification',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='deliveries', to='tasks_app.notification'),
        ),
        migrations.AddIndex(
            model_name='notification',
            index=models.Index(fields=['channel', '-created'], name='alert_notification_channel'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('notification__isnull', True)), fields=['channel', 'created'], name='alert_delivery_waiting'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.UniqueConstraint(fields=('event', 'channel'), name='alert_delivery_unique'),
        ),
    ]
