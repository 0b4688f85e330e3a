# syntax=docker/dockerfile:1
#
# docker build -t autogpt-bot .                              the bot
# docker build --build-arg WITH_CHROMIUM=1 -t autogpt-bot .  + Debian's Chromium (USE_WEB_BROWSER=chromium)
#
# No secrets are baked in: .env is excluded from the build context (.dockerignore) and is passed
# at run time (docker compose's env_file, docker run --env-file .env, a Kubernetes Secret).
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build: a virtualenv in /opt/venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when
# pyproject.toml changes, not at every code change.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# Then the code (README.md is the package's readme); --no-deps: everything it needs is above.
COPY README.md ./
COPY bot ./bot
COPY adapters ./adapters
RUN --mount=type=cache,target=/root/.cache/pip pip install --no-deps .

# ---------------------------------------------------------------- runtime: the virtualenv, non-root
FROM ${PYTHON_IMAGE} AS runtime
# bubblewrap: the sandbox the agent's commands run in (SANDBOX=auto or bwrap; deploy/sandbox.md
# says what the container needs for it). util-linux (prlimit, setpriv) is in the base image.
# git: clone_repository. espeak-ng: --speak's offline voice (TEXT_TO_SPEECH_PROVIDER=espeak).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bubblewrap git ca-certificates espeak-ng \
 && rm -rf /var/lib/apt/lists/*
# Optional headless browser for browse_website (USE_WEB_BROWSER=chromium); off by default (~300 MB).
ARG WITH_CHROMIUM=0
RUN case "$WITH_CHROMIUM" in \
      1|true|yes) apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
        && rm -rf /var/lib/apt/lists/* ;; \
      0|false|no|"") ;; \
      *) echo "WITH_CHROMIUM must be 1 or 0, not '$WITH_CHROMIUM'" >&2; exit 1 ;; \
    esac
RUN groupadd --gid 10001 autogpt \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin autogpt \
 && mkdir -p /data \
 && chown autogpt:autogpt /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data \
    CHROMIUM_PATH=/usr/bin/chromium
# A numeric user, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# `.env` is read from the working directory: `-v ./.env:/app/.env:ro` works too.
WORKDIR /app
# SQLite files (without Redis), workspaces and the archive.
VOLUME ["/data"]
# /healthz and /metrics (OPS_PORT); Slack's HTTP mode listens on SLACK_HTTP_PORT (3000) too.
EXPOSE 9102
# GET /healthz on OPS_HOST:OPS_PORT (9102 unless set), with the image's Python (no curl in slim):
# 200 is healthy; 503 (store or a chat connection failing) or no answer is not. OPS_PORT=0 (any
# free port) cannot be checked from outside and counts as healthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request as u; p=os.environ.get('OPS_PORT') or '9102'; h=os.environ.get('OPS_HOST') or '127.0.0.1'; h='127.0.0.1' if h in ('0.0.0.0','::') else h; h=f'[{h}]' if ':' in h else h; p=='0' or u.urlopen(f'http://{h}:{p}/healthz', timeout=5)"]
ENTRYPOINT ["autogpt-bot"]
CMD ["run"]
