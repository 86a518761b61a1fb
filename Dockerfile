# The one image of the fleet: web, worker, beat and migrate all run from it
# (see docker-compose.yml). Dependencies come from uv.lock, exactly.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself. Named one by one so that a host's .venv, data folder
# or caches never end up in the image (there is no .dockerignore).
COPY README.md alembic.ini worker.py scheduler.py ./
COPY newsletter ./newsletter
COPY migrations ./migrations
COPY templates ./templates
COPY content ./content
RUN uv sync --frozen --no-dev

ENV PATH="/app/.venv/bin:$PATH" \
    NEWSLETTER_DATA_DIR=/data

RUN mkdir -p /data

EXPOSE 8000

CMD ["uvicorn", "--factory", "newsletter.web.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
