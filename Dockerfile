# One image for web, worker and beat (docker-compose.yml chooses the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ARKDASH_DATA_DIR=/data
WORKDIR /app

COPY pyproject.toml README.md ./
COPY arkdash ./arkdash
COPY tasks_app ./tasks_app
COPY arksim ./arksim
RUN pip install --no-cache-dir .

COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0 \
    && useradd --create-home --uid 1000 arkdash && mkdir -p /data && chown arkdash /data
USER arkdash

EXPOSE 8000
CMD ["gunicorn", "arkdash.wsgi", "-b", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
