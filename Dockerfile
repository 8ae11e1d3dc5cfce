# One image for web, worker and beat (docker-compose.yml chooses the command).
FROM python:3.11-slim

# Static files live in the image, not in the /data volume: a volume keeps the first
# image's copy forever and would serve stale CSS/JS after an upgrade.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ARKDASH_DATA_DIR=/data \
    ARKDASH_STATIC_ROOT=/app/staticfiles ARKDASH_LOG_FORMAT=json
WORKDIR /app

# Mesa's EGL (software rendering) for the gallery's 3D pictures: pyrender draws off screen.
RUN apt-get update && apt-get install -y --no-install-recommends libegl1 libegl-mesa0 libgl1-mesa-dri \
    && rm -rf /var/lib/apt/lists/*

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
# --limit-request-line: the live poll of a 200-row page carries ~5 KB of row versions.
# --keep-alive 5: longer than the page's 3 s poll, so viewers reuse their connection.
# --logger-class: the access log leaves the secret out of callback addresses.
CMD ["gunicorn", "arkdash.wsgi", "-b", "0.0.0.0:8000", "--workers", "3", "--threads", "4", \
     "--access-logfile", "-", "--logger-class", "arkdash.access_log.Logger", \
     "--limit-request-line", "8190", "--keep-alive", "5", "--graceful-timeout", "20"]
