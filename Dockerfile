# Image for Quire's web server and Celery workers (docker-compose.yml).
#   docker build -t quire .                                         # CPU torch
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 -t quire:gpu .
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/platform:/app \
    DJANGO_SETTINGS_MODULE=quire.settings

WORKDIR /app
COPY requirements/ requirements/
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" -r requirements/worker.txt

COPY manage.py ./
COPY platform/ platform/
COPY workers/ workers/
COPY ml/ ml/
COPY scripts/ scripts/
# Static files are served by whitenoise from the image; the key is only for this build step.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home /app quire \
    && mkdir -p /var/lib/quire && chown quire /var/lib/quire
USER quire
EXPOSE 8000
CMD ["gunicorn", "quire.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4"]
