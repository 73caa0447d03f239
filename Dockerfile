# The clone-operator image: `make image`. Two stages: build and install the
# package into a virtualenv, then copy only that virtualenv onto a clean
# copy of the same base. No compilers, no build tools, no dev dependencies.
#
# PYTHON_IMAGE is any Debian-based image with python3 and its venv module:
#   - `make image` (the default) makes one from Debian's packages with
#     hack/base-image.sh (debootstrap; no image registry needed);
#   - machines with a registry may use the standard one, ideally pinned:
#     docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
# Needs BuildKit (the default builder of Docker >= 23; DOCKER_BUILDKIT=1 before).
# No `# syntax=` line on purpose: it would fetch the frontend from Docker Hub.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY crds/ crds/
# The optional build secret `pip-ca` is a CA bundle for pip (e.g. a proxy that
# inspects TLS): it exists only while this RUN runs, never in any layer.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && python3 -m venv /venv \
 && /venv/bin/pip install /src \
 && /venv/bin/pip uninstall --yes pip \
 && find /venv -name __pycache__ -type d -prune -exec rm -rf {} + \
 && if /venv/bin/python -c 'import kubernetes' 2>/dev/null; then \
      echo "the sync kubernetes client must not be in the image" >&2; exit 1; fi

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="clone-operator" \
      org.opencontainers.image.description="Kubernetes operator that clones stateful clusters and objects" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/clone-operator/clone-operator"
# A passwd entry for the uid the chart runs as: kopf names its identity after
# the user (getpass.getuser()), which fails for a uid without one.
RUN echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'nonroot:x:65532:' >>/etc/group
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    USER=nonroot
COPY --from=build /venv /venv
# 65532 is the conventional "nonroot" uid; the chart runs it with a
# read-only root filesystem and a writable emptyDir at /tmp.
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["clone-operator"]
CMD ["run"]
