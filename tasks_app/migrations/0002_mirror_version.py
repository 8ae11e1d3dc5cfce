"""Historical: this step created the list cache's version counter (a sequence on
PostgreSQL, a one-row table elsewhere). The list no longer keeps pages, and 0004 drops
the counter from databases that have it; a new database never creates it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0001_initial")]
    operations: list = []
