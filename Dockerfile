# c2c-ari, the click-to-call REST service. compose.yaml runs it beside asterisk/Dockerfile.
# Build context: the repository root, filtered by .dockerignore.

# The console and the widget, built from web/ with Node.js; only the built files are kept.
FROM node:20-bookworm-slim AS web
WORKDIR /usr/src/c2c-ari
COPY web/package.json web/package-lock.json ./web/
RUN npm --prefix web ci --no-audit --no-fund
COPY web/build.mjs ./web/
COPY web/src ./web/src
RUN npm --prefix web run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# What `pip install .` needs: the metadata, the readme it names, the package, and schemas/,
# which c2c_ari/schema_files links to (the wheel carries the schema documents through that
# link).
WORKDIR /usr/src/c2c-ari
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY c2c_ari ./c2c_ari
COPY --from=web /usr/src/c2c-ari/c2c_ari/static ./c2c_ari/static
# Install, check from outside the source tree that the installed package finds its schemas,
# then drop the source. The service runs as an unprivileged user; /data holds its SQLite file
# when no PostgreSQL URL is given (a named volume mounted there starts with this folder's
# owner).
RUN pip install . \
    && cd / \
    && python -c "from c2c_ari.schemas import load_schemas, schemas_dir; \
assert (schemas_dir() / 'clicktocall.json').is_file(), schemas_dir(); load_schemas(); \
from c2c_ari.api.pages import load_assets; assert {'index.html', 'widget.js'} <= set(load_assets())" \
    && rm -rf /usr/src/c2c-ari \
    && groupadd --system c2c \
    && useradd --system --gid c2c --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin c2c \
    && install -d -o c2c -g c2c -m 0750 /data

WORKDIR /data
USER c2c
ENV C2C_ARI_DATA_DIR=/data

EXPOSE 8000
CMD ["c2c-ari", "serve", "--host", "0.0.0.0", "--port", "8000"]
