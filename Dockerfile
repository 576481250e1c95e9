# kpexporter image: `docker build -t REGISTRY/kpexporter:0.1.0 .` (or `podman build`).
#
# Two stages: the build stage installs the locked dependencies (every file checked against the
# sha256 in requirements.lock, wheels only, so no compiler is ever needed) and the project into a
# virtualenv; the final stage copies that virtualenv alone onto the same slim base and runs as
# nobody. The base is pinned by version and digest, the same in both FROM lines and the base
# labels: to update, change all three together
# (see README, "Deploying to Kubernetes").
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: Kubernetes ignores it; the manifests probe /healthz and /readyz, and a baked-in probe would be wrong under --web-config-file (TLS) or another --listen
FROM python:3.11.15-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/kpexporter
COPY requirements.lock ./
RUN /opt/kpexporter/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY kpexporter ./kpexporter
# The project itself: no index, no build isolation (setuptools comes from the lock), no deps
# (all of them are in the lock). Then pip and setuptools leave the virtualenv.
RUN /opt/kpexporter/bin/pip install --no-deps --no-build-isolation --no-index ./ \
    && /opt/kpexporter/bin/python -m pip uninstall --yes setuptools pip \
    && /opt/kpexporter/bin/kpexporter --version

# The same base as the build stage (the virtualenv's python links to /usr/local/bin/python3.11).
FROM python:3.11.15-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kpexporter" \
      org.opencontainers.image.description="kube-proxy health-and-SLO exporter for Prometheus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.15-slim" \
      org.opencontainers.image.base.digest="sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff"
COPY --from=build /opt/kpexporter /opt/kpexporter
ENV PATH=/opt/kpexporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65534:65534
EXPOSE 19249
ENTRYPOINT ["kpexporter"]
CMD ["serve"]
