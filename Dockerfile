# errorproxy as a container: the proxy alone, configured by environment
# variables, running as an unprivileged user.
#
#   docker build -t errorproxy .
#   docker run --rm -p 8080:8080 -e ERRORPROXY_UPSTREAM=http://app.internal:3000 errorproxy
#   docker run --rm -p 8080:8080 -v "$PWD/config/sidecar.yaml:/etc/errorproxy/errorproxy.yaml:ro" errorproxy
#   docker run --rm -v "$PWD/my.yaml:/my.yaml:ro" errorproxy check --config /my.yaml
#
# Settings: the image's config, /etc/errorproxy/errorproxy.yaml (from
# deploy/docker/errorproxy.yaml: listen 0.0.0.0:8080, admin 0.0.0.0:9901, every
# request to ERRORPROXY_UPSTREAM), until you give your own: mount it over that
# file, or set ERRORPROXY_CONFIG to its path. Yours is then used as written,
# `listen` and `admin` included: the image sets no variable that overrides a
# config file. The order is the same everywhere: a flag wins over an
# ERRORPROXY_* variable, a variable over the file; so ERRORPROXY_LISTEN and
# ERRORPROXY_ADMIN, when you set them, do win over the file's `listen` and
# `admin`. The README lists every variable (ERRORPROXY_LOG_LEVEL,
# ERRORPROXY_WORKERS, ...).
#
# Ports: publish 8080 only. The admin listener (9901: /healthz, /readyz,
# /metrics) binds every interface here so that a kubelet's probes and a
# Prometheus on the pod network reach it, and it has no authentication: never
# publish it publicly. No `docker run -P` (that publishes every EXPOSEd port on
# all host addresses); if the host needs it, `-p 127.0.0.1:9901:9901`.
#
# Stopping: on SIGTERM errorproxy reports not ready, stops accepting, and gives
# requests in flight up to server.shutdown_timeout (30s by default) to finish.
# Docker's default stop grace is 10s, shorter than that drain: use
# `docker stop -t 35` (Compose: `stop_grace_period: 35s`; Kubernetes:
# `terminationGracePeriodSeconds: 35`), or lower shutdown_timeout to fit.

FROM python:3.11-slim

# Only what the package build reads (.dockerignore keeps the rest of the
# checkout out of the context). Every dependency ships manylinux wheels, so the
# slim image needs no compiler; no test extras.
COPY pyproject.toml README.md /tmp/errorproxy/
COPY proxy/ /tmp/errorproxy/proxy/
COPY templates/ /tmp/errorproxy/templates/
RUN pip install --no-cache-dir /tmp/errorproxy \
    && rm -rf /tmp/errorproxy \
    && groupadd --system --gid 10001 errorproxy \
    && useradd --system --uid 10001 --gid errorproxy --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin errorproxy

# The image's config (see "Settings" above), readable by the unprivileged user.
COPY deploy/docker/errorproxy.yaml /etc/errorproxy/errorproxy.yaml

# glibc malloc: serve allocations under 16 MiB (body chunks, intercepted error
# bodies) from the heap instead of a fresh mmap each time, and keep up to
# 256 MiB of freed heap mapped rather than trimming it at once. Large bodies
# then stop paying page faults for every buffer, at the price of a resident
# size that can stay up to ~256 MiB above the live data after a burst: size
# memory limits for it (deploy/kubernetes sets 512Mi).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_MMAP_THRESHOLD_=16777216 \
    MALLOC_TRIM_THRESHOLD_=268435456 \
    MALLOC_TOP_PAD_=16777216 \
    ERRORPROXY_CONFIG=/etc/errorproxy/errorproxy.yaml

# ERRORPROXY_UPSTREAM is deliberately unset: without it (or a config of your
# own), `errorproxy run` exits 1 naming it rather than guessing.

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /

EXPOSE 8080 9901
STOPSIGNAL SIGTERM

# slim has no curl: ask /healthz with Python, on the port ERRORPROXY_ADMIN names,
# else 9901. Any answer but 2xx, a refused connection or a timeout raises: exit 1.
# A config of your own whose `admin` is on another port: set ERRORPROXY_ADMIN
# to it as well; with the admin listener off, run with --no-healthcheck.
# Kubernetes ignores this and uses the pod's probes instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('ERRORPROXY_ADMIN', '').rpartition(':')[2] or '9901'; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]

ENTRYPOINT ["errorproxy"]
CMD ["run"]
