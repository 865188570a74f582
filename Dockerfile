# syntax=docker/dockerfile:1
#
# The one civicml image: KFP component base_image, Katib trial Jobs
# (`civicml trial`) and the model server (`civicml serve`).
#
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t registry.example.gov/civicml:0.1.0 .
#
# Air-gapped builds: point PYTHON_IMAGE at your mirror and pass
# --build-arg PIP_INDEX_URL=https://pypi.mirror.example.gov/simple

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- builder ---
FROM ${PYTHON_IMAGE} AS builder

ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_INDEX_URL=${PIP_INDEX_URL:-https://pypi.org/simple} \
    PYTHONDONTWRITEBYTECODE=1

# Compilers live only in this stage, for any dependency that ships no wheel
# for the target platform (e.g. on arm64); the final stage has none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, so code changes do not invalidate the heavy layer.
# constraints.txt is a `pip freeze` of the tested venv; an editable line for
# civicml itself cannot be a constraint, so it is filtered out.
COPY constraints.txt ./
RUN grep -vE '^(-e |civicml[ =@]|#)' constraints.txt > /tmp/constraints.txt

COPY pyproject.toml README.md ./
COPY civicml ./civicml
COPY components ./components
COPY pipelines ./pipelines

# Build every wheel here, then install them offline into a venv that is
# copied whole into the final stage: the final stage never runs a compiler
# or reaches an index.
RUN pip wheel --wheel-dir /wheels -c /tmp/constraints.txt . \
    && python -m venv /opt/civicml \
    && /opt/civicml/bin/pip install --no-cache-dir --no-index --find-links /wheels \
         -c /tmp/constraints.txt civicml \
    && /opt/civicml/bin/pip check

# ------------------------------------------------------------------ final ---
FROM ${PYTHON_IMAGE}

ARG VERSION=0.0.0+unknown
ARG REVISION=unknown
# Full reference the image is pushed as; recorded with every model version
# (civicml.provenance reads CIVICML_IMAGE). Pass --build-arg IMAGE=$(IMAGE).
ARG IMAGE=civicml:${VERSION}
# Where the source lives; override for an internal mirror of the repository.
ARG SOURCE=https://github.com/civicml/civicml

LABEL org.opencontainers.image.title="civicml" \
      org.opencontainers.image.description="Auditable ML training, evaluation and serving on Kubeflow" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# Numeric UID/GID so Kubernetes can verify runAsNonRoot (it cannot resolve
# names). /gcs, /minio, /s3 and /oci are where the KFP v2 launcher stages
# artifacts; they sit at the filesystem root, which a non-root user cannot
# create directories in, so they are created here and owned by civicml.
RUN groupadd --system --gid 10001 civicml \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/civicml --create-home \
         --shell /usr/sbin/nologin civicml \
    && mkdir -p /gcs /minio /s3 /oci \
    && chown 10001:10001 /gcs /minio /s3 /oci

COPY --from=builder /opt/civicml /opt/civicml

# Caches go to /tmp: pods run with a read-only root filesystem and an
# emptyDir at /tmp. CIVICML_IMAGE and CIVICML_REVISION are what
# civicml.provenance records with every model version.
# OMP_WAIT_POLICY: XGBoost's OpenMP threads spin while waiting by default; under a CPU limit
# or a busy neighbour that made trials up to 60x slower in `make bench`.
ENV PATH=/opt/civicml/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    CIVICML_IMAGE=${IMAGE} \
    CIVICML_REVISION=${REVISION} \
    OMP_WAIT_POLICY=PASSIVE

USER 10001:10001
WORKDIR /home/civicml

EXPOSE 8080
ENTRYPOINT ["civicml"]
CMD ["--help"]
