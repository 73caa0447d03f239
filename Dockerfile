# syntax=docker/dockerfile:1
# The clone-operator image: `make image`. Two stages: build the wheel, then
# install it into a clean virtualenv on the same slim base and copy only that.
# Pin the base by digest for reproducible builds, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install --no-cache-dir "build>=1.2"
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY crds/ crds/
RUN python -m build --wheel --outdir /dist \
 && python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir /dist/*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="clone-operator" \
      org.opencontainers.image.description="Kubernetes operator that clones stateful clusters and objects" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/clone-operator/clone-operator"
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /venv /venv
# 65532 is the conventional "nonroot" uid; the chart runs it with a
# read-only root filesystem and a writable emptyDir at /tmp.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["clone-operator"]
CMD ["run"]
