"""The three servers of a benchmark: the upstream nginx, nginx as a proxy, and errorproxy.

Both proxies get the same job: one upstream, keep-alive connections to it,
every request forwarded, and an upstream 409 replaced by a small
application/problem+json body. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .procs import BenchError, Group, Process, wait_http

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GIB = 1024 * MIB
UPLOAD_LIMIT = "200m"  # above the 100 MiB upload, in both proxies and the upstream

OK_BODY = '{"ok":true}'
DOC_BODY = '{"id":42,"title":"Quarterly report"}'  # /doc/N: one representation for any N, GET or PUT
CONFLICT_BODY = '{"error":{"message":"Version conflict: document 42 was modified"},"currentVersion":7}'
CONFLICT_ETAG = '"v7-doc"'
PROBLEM_409 = ('{"type":"about:blank","title":"Conflict","status":409,'
               '"detail":"The resource was changed by another request."}')

# Shared by both nginx instances: paths inside the run's temp dir, no access log.
_NGINX_MAIN = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  # No kept-alive connection is ended after N requests (nginx's default is 1000), on the
  # client side here and in the proxy's `upstream` block: the upstream connections counted
  # are then those a proxy opens by choice (errorproxy has no such limit).
  keepalive_requests 1000000;
  client_max_body_size {upload_limit};
{servers}
}}
"""

_UPSTREAM_SERVER = """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {dir}/www;
    location = /ok {{ default_type application/json; return 200 '{ok}'; }}
    location = /conflict {{
      default_type application/json;
      add_header ETag '{etag}' always;
      return 409 '{conflict}';
    }}
    location = /mib {{ default_type application/octet-stream; try_files /mib.bin =404; }}
    location = /gib {{ default_type application/octet-stream; try_files /gib.bin =404; }}
    # An upload sink that answers only after reading the whole body: `return` would answer
    # at once and discard the body behind the response. The mirror reads the body first
    # (in memory), then the static handler refuses the POST and error_page turns that into 200.
    location = /upload {{
      client_body_buffer_size {upload_limit};
      mirror /_mirror;
      mirror_request_body on;
      error_page 404 405 =200 @uploaded;
    }}
    location = /_mirror {{ internal; return 204; }}
    location @uploaded {{ default_type application/json; return 200 '{ok}'; }}
    location = /_status {{ stub_status; }}
    # A legacy document store as the guard-write case needs it: 200 to GET and PUT alike, no ETag.
    location /doc/ {{ default_type application/json; return 200 '{doc}'; }}
  }}
"""

_PROXY_SERVER = """\
  upstream app {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port}{ssl} backlog=4096;
{tls}    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream request bodies as errorproxy does (nginx's default spools them to disk first).
      proxy_request_buffering off;
{buffering}      proxy_intercept_errors on;
      error_page 409 = @json409;
    }}
    location @json409 {{
      default_type application/problem+json;
      return 409 '{problem}';
    }}
  }}
"""

_ERRORPROXY_CONFIG = """\
listen: 127.0.0.1:{port}
{tls}admin: off
access_log: off
server:
  shutdown_timeout: 1s
{server}upstreams:
  app:
    url: http://127.0.0.1:{upstream_port}
routes:
  - name: guarded  # the guard-write case: the conflict guard in front of /doc/N
    match: {{path_prefix: /guarded/}}
    upstream: app
    strip_prefix: /guarded
    intercept: [409]
    format: json
    concurrency: {{}}
  - name: all
    match: {{path_prefix: /}}
    upstream: app
    intercept: [409]
    format: json
    max_body_size: {upload_limit}
"""


@dataclass
class Server:
    name: str  # "errorproxy", "nginx" or "upstream"
    port: int
    process: Process
    workers: int
    tls: bool = False  # clients speak HTTPS to it

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Certificate:
    """The bench's own self-signed certificate for 127.0.0.1, which both proxies serve."""

    cert: Path
    key: Path


def make_certificate(group: Group) -> Certificate:
    """An EC P-256 certificate (fast handshakes, as a real deployment would pick), made by openssl."""
    certificate = Certificate(group.dir / "tls.crt", group.dir / "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(certificate.key), "-out", str(certificate.cert), "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return certificate


def _nginx_dir(group: Group, name: str) -> Path:
    # Started as root, nginx's workers run as `nobody`: they must be able to enter the temp
    # dir. nginx creates its *_temp_path directories itself, owned by that user.
    group.dir.chmod(0o755)
    path = group.dir / name
    (path / "www").mkdir(parents=True, exist_ok=True)
    return path


def _start_nginx(group: Group, nginx: str, name: str, workers: int, servers: str, port: int) -> Server:
    path = _nginx_dir(group, name)
    config = path / "nginx.conf"
    config.write_text(_NGINX_MAIN.format(workers=workers, dir=path, upload_limit=UPLOAD_LIMIT, servers=servers))
    process = group.start(name, [nginx, "-p", str(path), "-c", str(config)])
    return Server(name, port, process, workers)


def start_upstream(group: Group, nginx: str, port: int, workers: int = 1) -> Server:
    """The fast upstream both proxies forward to; /_status is its stub_status."""
    path = _nginx_dir(group, "upstream")
    (path / "www" / "mib.bin").write_bytes(os.urandom(MIB))
    with open(path / "www" / "gib.bin", "wb") as sparse:  # 1 GiB of zeros that takes no disk
        sparse.truncate(GIB)
    servers = _UPSTREAM_SERVER.format(port=port, dir=path, ok=OK_BODY, doc=DOC_BODY, etag=CONFLICT_ETAG,
                                      conflict=CONFLICT_BODY, upload_limit=UPLOAD_LIMIT)
    server = _start_nginx(group, nginx, "upstream", workers, servers, port)
    wait_http(server.process, f"{server.url}/_status")
    return server


def nginx_proxy_servers(port: int, upstream_port: int, tls: Certificate | None = None, *,
                        buffering: bool = True) -> str:
    """The `upstream` and `server` blocks of nginx as the proxy; `buffering=False` adds `proxy_buffering off`."""
    lines = "" if tls is None else (f"    ssl_certificate {tls.cert};\n    ssl_certificate_key {tls.key};\n"
                                    "    ssl_protocols TLSv1.2 TLSv1.3;\n")
    # By default nginx reads a response into proxy_buffers (and a temp file past them) as fast
    # as the upstream sends it; `proxy_buffering off` relays it through one proxy_buffer_size
    # buffer, reading more only as the client takes it, as errorproxy streams a body.
    unbuffered = "" if buffering else "      proxy_buffering off;\n"
    return _PROXY_SERVER.format(port=port, upstream_port=upstream_port, problem=PROBLEM_409,
                                ssl="" if tls is None else " ssl", tls=lines, buffering=unbuffered)


def start_nginx_proxy(group: Group, nginx: str, port: int, upstream: Server, workers: int,
                      tls: Certificate | None = None, *, buffering: bool = True) -> Server:
    servers = nginx_proxy_servers(port, upstream.port, tls, buffering=buffering)
    name = "nginx" if buffering else "nginx-unbuffered"
    server = _start_nginx(group, nginx, f"{name}-{workers}w-{port}", workers, servers, port)
    server.tls = tls is not None
    wait_http(server.process, f"{server.url}/ok")
    return server


def start_errorproxy(group: Group, python: str, port: int, upstream: Server, workers: int,
                     loop: str = "uvloop", tls: Certificate | None = None, *,
                     launch: tuple[str, ...] = ("-m", "proxy"), env: dict[str, str] | None = None,
                     root: Path = ROOT, idle_poll: str | None = None) -> Server:
    """`errorproxy run` with the bench's config; `launch` is what starts it after `python` (a hook
    of bench/gc_cost.py's, say, handed the `run` arguments), `env` added to its environment, `root`
    the checkout whose code runs (its directory is the process's, so `-m proxy` finds it first),
    `idle_poll` its `server.idle_poll` (None: errorproxy's default)."""
    config = group.dir / f"errorproxy-{port}.yaml"
    lines = "" if tls is None else f"tls: {{cert: {tls.cert}, key: {tls.key}}}\n"
    config.write_text(_ERRORPROXY_CONFIG.format(port=port, upstream_port=upstream.port, upload_limit="200MiB",
                                                tls=lines, server="" if idle_poll is None else f"  idle_poll: {idle_poll}\n"))
    argv = [python, *launch, "run", "--config", str(config)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ERRORPROXY_")}
    environment.update(PYTHONUNBUFFERED="1", ERRORPROXY_LOG_LEVEL="WARNING", ERRORPROXY_LOOP=loop, **(env or {}))
    process = group.start(f"errorproxy-{workers}w-{port}", argv, env=environment, cwd=root)
    server = Server("errorproxy", port, process, workers, tls=tls is not None)
    wait_http(process, f"{server.url}/ok")
    return server


def read_accepts(upstream: Server) -> int:
    """The upstream's count of accepted connections (this read's own connection included)."""
    import urllib.request

    with urllib.request.urlopen(f"{upstream.url}/_status", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"server accepts handled requests\s+(\d+)", text)
    if match is None:
        raise ValueError(f"unexpected stub_status output: {text!r}")
    return int(match.group(1))


# Versions and capabilities -----------------------------------------------------


def errorproxy_python() -> str:
    """A Python that can import the `proxy` package: this one, else the checkout's .venv."""
    for python in (sys.executable, str(ROOT / ".venv" / "bin" / "python")):
        if os.access(python, os.X_OK) and subprocess.run(
                [python, "-c", "import proxy"], cwd=ROOT, capture_output=True).returncode == 0:
            return python
    raise BenchError("cannot import errorproxy's `proxy` package: run `pip install -e .` in the checkout")


def errorproxy_has_workers(python: str) -> bool:
    """Whether this checkout's `errorproxy run` accepts --workers N."""
    help_text = subprocess.run([python, "-m", "proxy", "run", "--help"], cwd=ROOT,
                               capture_output=True, text=True).stdout
    return "--workers" in help_text


def versions(python: str, nginx: str) -> dict[str, str]:
    probe = ("import aiohttp, platform, importlib.metadata as m\n"
             "def v(name):\n"
             "    try: return m.version(name)\n"
             "    except m.PackageNotFoundError: return None\n"
             "print(platform.python_version(), aiohttp.__version__, v('uvloop'), v('errorproxy'))")
    python_version, aiohttp_version, uvloop_version, errorproxy_version = subprocess.run(
        [python, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    nginx_text = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    return {"python": python_version, "aiohttp": aiohttp_version, "uvloop": uvloop_version,
            "errorproxy": errorproxy_version, **_checkout(),
            "nginx": nginx_text.removeprefix("nginx version: nginx/")}


def _checkout() -> dict[str, object]:
    """The commit measured, and whether the working tree differed from it (read-only git)."""
    def git(*args: str) -> str | None:
        try:
            # No optional locks: never refresh the index under a concurrent git command.
            done = subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True,
                                  text=True, timeout=10)
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--", "proxy")
    return {"commit": commit, "proxy_modified": bool(status) if status is not None else None}
