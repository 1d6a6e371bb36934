# Rustwatch image: web, worker and beat all run from it (see docker-compose.yml).
# Build with --build-arg RUSTWATCH_EXTRAS=gpu for a training worker on a GPU.
FROM python:3.12-slim-bookworm

ARG RUSTWATCH_EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTWATCH_VAR=/data \
    STATIC_ROOT=/app/staticfiles \
    KERAS_HOME=/data/keras

RUN useradd --system --create-home --home-dir /home/rustwatch rustwatch \
    && mkdir -p /data/media /data/keras \
    && chown -R rustwatch:rustwatch /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY inspection ./inspection
COPY ml ./ml
RUN pip install ".${RUSTWATCH_EXTRAS:+[$RUSTWATCH_EXTRAS]}"
COPY manage.py ./
COPY templates ./templates
COPY static ./static
# Collect static files into the image (a throwaway key: nothing is signed here).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0

USER rustwatch
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=8)"
CMD ["sh", "-c", "exec gunicorn inspection.wsgi:application --bind 0.0.0.0:${PORT:-8000} --workers ${WEB_CONCURRENCY:-3} --timeout 120 --access-logfile - --no-control-socket"]
