# syntax=docker/dockerfile:1
# The recstream worker for production on an NVIDIA GPU (CUDA torch + faiss-gpu-cu12).
# Build: docker build -t recstream .   Run: docker run --gpus all recstream
# The host needs the NVIDIA driver and the NVIDIA Container Toolkit; the CUDA
# libraries themselves come from the torch and FAISS wheels.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# Unprivileged user; its home holds the checkpoint volume.
RUN groupadd --system --gid 10001 recstream \
    && useradd --system --uid 10001 --gid recstream --no-create-home \
        --home-dir /var/lib/recstream --shell /usr/sbin/nologin recstream \
    && install -d -o recstream -g recstream -m 0750 /var/lib/recstream

# torch first, in a layer of its own (gigabytes, rarely changes). PyPI's default
# Linux wheel is the CUDA build.
RUN pip install --no-cache-dir "torch>=2.4,<2.14"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY stream/ stream/
COPY index/ index/
COPY models/ models/
COPY recstream/ recstream/

# faiss-cpu (a base dependency) and faiss-gpu-cu12 (the `gpu` extra) both install
# the `faiss` package, and Python prefers faiss-cpu's `_swigfaiss.abi3.so`, so both
# together means CPU-only FAISS. Remove faiss-cpu, reinstall the same faiss-gpu-cu12
# (removing faiss-cpu deletes the files they share), and check that GPU FAISS loads
# (it imports without a GPU: the CUDA runtime and cuBLAS come from pip wheels).
RUN pip install --no-cache-dir ".[gpu]" \
    && pip uninstall --yes faiss-cpu \
    && pip install --no-cache-dir --no-deps --force-reinstall \
        "faiss-gpu-cu12==$(python -c 'import importlib.metadata as m; print(m.version("faiss-gpu-cu12"))')" \
    && python -c "import faiss; assert hasattr(faiss, 'StandardGpuResources'), 'CPU-only FAISS'" \
    && recstream --help > /dev/null

WORKDIR /var/lib/recstream
USER recstream:recstream

# Prometheus /metrics, /healthz (the loop is alive) and /readyz.
EXPOSE 9108

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('RECSTREAM_METRICS_PORT') or '9108'; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

# On SIGTERM the worker finishes (publishes and commits) its current batch, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["recstream"]
CMD ["run"]
