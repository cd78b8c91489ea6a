"""The deployment files: Dockerfile, .dockerignore, Kubernetes manifests, alert rules.

Nothing here builds an image, starts a container or talks to a cluster or a
Prometheus; all of it runs offline. The Dockerfile is read with
dockerfile-parse, the manifests are checked against the Kubernetes API schemas
that kubernetes-validate ships (strict: an unknown or misspelt field fails), the
errorproxy config inside the ConfigMap goes through our own loader, and every
alert expression is parsed with promql-parser and checked against the metrics
errorproxy exports. Beyond the schemas, the tests check what ties the files
together: ports, paths, the user, the drain time.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import kubernetes_validate
import promql_parser
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from prometheus_client import Counter, Gauge, Histogram
from yarl import URL

from proxy import cli

from proxy.observe import metrics
from proxy.config.loader import ConfigError, from_text, load_from_env
from proxy.core.settings import Address

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DRAIN_MARGIN = 5  # seconds the grace period must leave past errorproxy's own stop
# The oldest Kubernetes the example is for (the preStop `sleep` action is on by default from 1.30).
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


# ---------------------------------------------------------------- Dockerfile


@cache
def _instructions() -> tuple[tuple[str, str], ...]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return tuple((item["instruction"], item["value"]) for item in parser.structure)


@cache
def _image_env() -> dict[str, str]:
    return DockerfileParser(path=str(ROOT / "Dockerfile")).envs


def _values(instruction: str) -> list[str]:
    return [value for name, value in _instructions() if name == instruction]


def _index(instruction: str) -> int:
    return max(i for i, (name, _) in enumerate(_instructions()) if name == instruction)


def _image_user() -> tuple[int, int]:
    user, _, group = _values("USER")[-1].partition(":")
    return int(user), int(group)


def _exposed() -> set[int]:
    return {int(port.split("/")[0]) for value in _values("EXPOSE") for port in value.split()}


def _healthcheck() -> tuple[dict[str, str], list[str]]:
    options, _, command = _values("HEALTHCHECK")[-1].partition("CMD")
    return dict(re.findall(r"--([a-z-]+)=(\S+)", options)), json.loads(command)


def test_base_image_is_python_311_slim():
    assert _values("FROM") == ["python:3.11-slim"]


def test_runs_as_a_numeric_non_root_user_from_before_it_starts():
    # Numeric, or Kubernetes' runAsNonRoot cannot tell the user is not root.
    user, group = _image_user()
    assert user > 0 and group > 0
    assert _index("USER") < _index("ENTRYPOINT") and _index("USER") < _index("CMD")


def test_starts_errorproxy_run():
    entrypoint, command = json.loads(_values("ENTRYPOINT")[-1]), json.loads(_values("CMD")[-1])
    assert entrypoint == ["errorproxy"] and command == ["run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts
    assert cli._parser().parse_args(command).command == "run"


def test_installs_the_package_from_its_sources_without_test_extras():
    installs = [run for run in _values("RUN") if "pip install" in run]
    assert len(installs) == 1 and "--no-cache-dir" in installs[0]
    assert "[" not in installs[0], "no extras in the image"
    copied = " ".join(_values("COPY"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for needed in ("pyproject.toml", project["readme"], "proxy/"):
        assert needed in copied.split()


def test_stops_on_sigterm_and_exposes_the_proxy_and_admin_ports():
    assert _values("STOPSIGNAL") == ["SIGTERM"]
    assert _exposed() == {8080, 9901}


def test_environment_defaults():
    env = _image_env()
    assert {key: env.get(key) for key in (
        "PYTHONUNBUFFERED", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
    )} == {
        "PYTHONUNBUFFERED": "1",
        "MALLOC_MMAP_THRESHOLD_": "16777216",
        "MALLOC_TRIM_THRESHOLD_": "268435456",
        "MALLOC_TOP_PAD_": "16777216",
    }
    assert "ERRORPROXY_UPSTREAM" not in env


def test_image_sets_no_variable_that_overrides_a_config_file():
    # The order is flags > variables > file, so a variable the image set would win over a
    # mounted file's `listen` or `admin` without a word: the image's defaults live in its
    # own config file instead, which a config of one's own replaces whole.
    assert {key for key in _image_env() if key.startswith("ERRORPROXY_")} == {"ERRORPROXY_CONFIG"}


def _image_config() -> Path:
    """The checkout's file that the image has at ERRORPROXY_CONFIG (by its COPY instruction)."""
    target = _image_env()["ERRORPROXY_CONFIG"]
    copied = {value.split()[-1]: value.split()[0] for value in _values("COPY") if len(value.split()) == 2}
    assert target in copied, f"nothing is copied to {target}"
    return ROOT / copied[target]


def test_image_config_listens_on_the_exposed_ports():
    env = {**_image_env(), "ERRORPROXY_CONFIG": str(_image_config()), "ERRORPROXY_UPSTREAM": "http://127.0.0.1:3000"}
    settings = load_from_env(env)
    assert settings.listen == Address("0.0.0.0", 8080)
    assert settings.ops.admin == Address("0.0.0.0", 9901)
    assert {settings.listen.port, settings.ops.admin.port} == _exposed()
    assert [str(upstream.url) for upstream in settings.upstreams.values()] == ["http://127.0.0.1:3000"]


def test_image_config_without_an_upstream_names_the_variable():
    env = {**_image_env(), "ERRORPROXY_CONFIG": str(_image_config())}
    with pytest.raises(ConfigError) as caught:
        load_from_env(env)
    assert caught.value.problems == ["upstreams.default.url: ${ERRORPROXY_UPSTREAM} is not set"]


def test_a_mounted_config_is_used_as_written_and_variables_then_flags_win_over_it(tmp_path):
    config = tmp_path / "errorproxy.yaml"
    config.write_text("listen: 127.0.0.1:8081\nadmin: 127.0.0.1:9902\nupstreams: {app: http://127.0.0.1:3000}\n"
                      "routes: [{match: {path_prefix: /}, upstream: app}]\n")
    env = {**_image_env(), "ERRORPROXY_CONFIG": str(config)}
    settings = load_from_env(env)
    assert (settings.listen, settings.ops.admin) == (Address("127.0.0.1", 8081), Address("127.0.0.1", 9902))
    env |= {"ERRORPROXY_LISTEN": "127.0.0.1:8082", "ERRORPROXY_ADMIN": "127.0.0.1:9903"}
    settings = load_from_env(env)
    assert (settings.listen, settings.ops.admin) == (Address("127.0.0.1", 8082), Address("127.0.0.1", 9903))
    assert load_from_env(env, listen="127.0.0.1:8083").listen == Address("127.0.0.1", 8083)


@pytest.mark.parametrize(
    "admin, url",
    [
        pytest.param(None, "http://127.0.0.1:9901/healthz", id="image-default"),  # the image's config says 9901
        pytest.param("0.0.0.0:9911", "http://127.0.0.1:9911/healthz", id="moved"),
        pytest.param("[::]:9912", "http://127.0.0.1:9912/healthz", id="ipv6-address"),
        pytest.param("", "http://127.0.0.1:9901/healthz", id="from-config-file"),
    ],
)
def test_healthcheck_asks_healthz_on_the_admin_port(monkeypatch, admin, url):
    options, argv = _healthcheck()
    assert argv[:2] == ["python", "-c"] and len(argv) == 3
    asked = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: asked.append((url, timeout)))
    if admin is None:
        monkeypatch.delenv("ERRORPROXY_ADMIN", raising=False)
    else:
        monkeypatch.setenv("ERRORPROXY_ADMIN", admin)
    exec(argv[2], {"__name__": "__main__"})
    assert len(asked) == 1 and asked[0][0] == url
    assert asked[0][1] < float(options["timeout"].removesuffix("s")), "Docker's timeout must not cut it first"


def test_healthcheck_fails_when_healthz_does_not_answer_2xx(monkeypatch):
    def unavailable(url, timeout):
        raise urllib.error.HTTPError(url, 503, "Service Unavailable", None, None)

    monkeypatch.setattr(urllib.request, "urlopen", unavailable)
    with pytest.raises(urllib.error.HTTPError):  # an uncaught exception: python exits 1, unhealthy
        exec(_healthcheck()[1][2], {"__name__": "__main__"})


def _dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last matching pattern
    decides, and a pattern matching a parent directory matches everything under it."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = "".join(
            "(.*/)?" if part == "**/" else ".*" if part == "**" else "[^/]*" if part == "*" else
            "[^/]" if part == "?" else part if part.startswith("[") else re.escape(part)
            for part in re.findall(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+", pattern)
        )
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not negated
    return ignored


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", ".pytest_cache/README.md", "tests/unit/test_deploy.py",
    "test-artifacts/409.png", "errorproxy.egg-info/PKG-INFO", "build/lib/proxy/cli.py", ".env",
    "proxy/__pycache__/cli.cpython-311.pyc", "proxy/cli.pyc", "deploy/kubernetes/deployment.yaml",
])
def test_dockerignore_leaves_out(path):
    assert _dockerignored(path)


def test_dockerignore_keeps_what_the_build_copies():
    package = [str(p.relative_to(ROOT)) for folder in ("proxy", "templates") for p in (ROOT / folder).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    assert "templates/409.html" in package and "proxy/config/embedded.yaml" in package
    sources = [source for value in _values("COPY") for source in value.split()[:-1]]
    kept = [path.rstrip("/") for path in sources + package]
    assert [path for path in kept if _dockerignored(path)] == []


# ---------------------------------------------------------------- Kubernetes


@cache
def _documents() -> tuple[dict, ...]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return tuple(documents)


def _one(kind: str) -> dict:
    found = [doc for doc in _documents() if doc.get("kind") == kind]
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def _pod() -> dict:
    return _one("Deployment")["spec"]["template"]["spec"]


def _pod_labels() -> dict[str, str]:
    return _one("Deployment")["spec"]["template"]["metadata"]["labels"]


def _container(name: str) -> dict:
    return next(c for c in _pod()["containers"] if c["name"] == name)


def _env(container: dict) -> dict[str, str]:
    return {var["name"]: var["value"] for var in container.get("env", [])}


def _port(container: dict, port: int | str) -> int:
    """A container port by number or by name."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def _settings():
    config_map = _one("ConfigMap")
    path = Path(_env(_container("errorproxy"))["ERRORPROXY_CONFIG"])
    return from_text(config_map["data"][path.name], f"ConfigMap {config_map['metadata']['name']}: {path.name}")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("index", range(len(_documents())),
                         ids=[f"{doc['kind']}-{doc['metadata']['name']}" for doc in _documents()])
def test_manifest_matches_the_kubernetes_schema(index, version):
    kubernetes_validate.validate(_documents()[index], version, strict=True)


def test_schema_check_catches_a_misspelt_field():
    deployment = copy.deepcopy(_one("Deployment"))
    context = deployment["spec"]["template"]["spec"]["containers"][1]["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_config_map_holds_a_valid_sidecar_config():
    settings = _settings()
    assert settings.listen == Address("0.0.0.0", 8080)
    assert settings.ops.admin == Address("0.0.0.0", 9901)
    assert settings.ops.watch_config, "ConfigMap updates are picked up by errorproxy's file watcher"
    assert [u.url for u in settings.upstreams.values()] == [URL("http://127.0.0.1:3000")]
    assert len(settings.routes) == 1 and settings.trusted_proxies


def test_config_map_is_used_as_written_in_the_container(tmp_path):
    # The image's and the pod's variables together leave the ConfigMap's `listen` and `admin`
    # alone: moved in the file, they move in the process.
    container, written = _container("errorproxy"), _settings()
    path = Path(_env(container)["ERRORPROXY_CONFIG"])
    text = _one("ConfigMap")["data"][path.name]
    text = text.replace(f"listen: {written.listen}", "listen: 0.0.0.0:8181")
    text = text.replace(f"admin: {written.ops.admin}", "admin: 0.0.0.0:9191")
    mounted = tmp_path / path.name
    mounted.write_text(text)
    settings = load_from_env({**_image_env(), **_env(container), "ERRORPROXY_CONFIG": str(mounted)})
    assert (settings.listen, settings.ops.admin) == (Address("0.0.0.0", 8181), Address("0.0.0.0", 9191))


def test_config_is_mounted_where_errorproxy_reads_it_and_follows_updates():
    container = _container("errorproxy")
    path = Path(_env(container)["ERRORPROXY_CONFIG"])
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent)
    assert "subPath" not in mount, "the kubelet never updates a subPath mount"
    volume = next(v for v in _pod()["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"]
    assert "items" not in volume["configMap"] and path.name in _one("ConfigMap")["data"]


def test_container_ports_are_the_configured_and_exposed_ones():
    container, settings = _container("errorproxy"), _settings()
    assert _port(container, "http") == settings.listen.port
    assert _port(container, "admin") == settings.ops.admin.port
    assert {p["containerPort"] for p in container["ports"]} <= _exposed()
    assert "ports" not in _container("app"), "the app listens on loopback only"


@pytest.mark.parametrize("probe, path", [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")])
def test_probes_ask_the_admin_listener(probe, path):
    container = _container("errorproxy")
    check = container[probe]["httpGet"]
    assert check["path"] == path and check.get("scheme", "HTTP") == "HTTP"
    assert _port(container, check["port"]) == _settings().ops.admin.port == 9901


def test_service_exposes_the_proxy_port_and_nothing_else():
    service, container = _one("Service"), _container("errorproxy")
    assert service["spec"]["selector"].items() <= _pod_labels().items()
    targets = [(p["port"], _port(container, p["targetPort"])) for p in service["spec"]["ports"]]
    assert targets == [(80, _settings().listen.port)]


def test_grace_period_covers_the_drain():
    server = _settings().server
    grace = _pod()["terminationGracePeriodSeconds"]
    assert grace >= server.stop_delay + server.shutdown_timeout + DRAIN_MARGIN
    app_wait = _container("app")["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert server.stop_delay < app_wait < grace, "the app outlives errorproxy's last accepted connections"


@pytest.mark.parametrize("name", ["app", "errorproxy"])
def test_containers_are_locked_down(name):
    pod, context = _pod(), _container(name)["securityContext"]
    assert context.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True
    assert context["allowPrivilegeEscalation"] is False and context.get("privileged", False) is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]


def test_errorproxy_runs_as_the_image_user():
    context = _container("errorproxy")["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == _image_user()


@pytest.mark.parametrize("name", ["app", "errorproxy"])
def test_containers_request_resources_and_cap_memory(name):
    resources = _container(name)["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys() and "memory" in resources["limits"]


def test_network_policy_opens_the_admin_port_only_to_chosen_sources():
    policy, container = _one("NetworkPolicy")["spec"], _container("errorproxy")
    assert policy["podSelector"]["matchLabels"].items() <= _pod_labels().items()
    open_ports, admin_rules = set(), []
    for rule in policy["ingress"]:
        ports = {_port(container, p["port"]) for p in rule.get("ports", [])} or {"every port"}
        if not rule.get("from"):
            open_ports |= ports
        if 9901 in ports or "every port" in ports:
            admin_rules.append(rule)
    assert open_ports == {8080}
    assert admin_rules and all(rule.get("from") for rule in admin_rules)


def test_prometheus_scrapes_the_admin_port():
    annotations = _one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(_settings().ops.admin.port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_deployment_selects_its_own_pods():
    assert _one("Deployment")["spec"]["selector"]["matchLabels"].items() <= _pod_labels().items()


# ---------------------------------------------------------------- alert rules

# name: (type, labels): the contract dashboards and alerts rely on; checked against proxy.metrics below.
METRICS = {
    "errorproxy_requests": ("counter", {"route", "method", "status"}),
    "errorproxy_intercepted": ("counter", {"route", "upstream_status", "status", "format"}),
    "errorproxy_upstream_errors": ("counter", {"upstream", "kind"}),
    "errorproxy_upstream_retries": ("counter", {"upstream", "reason"}),
    "errorproxy_upstream_retry_overflow": ("counter", {"upstream"}),
    "errorproxy_upstream_ejections": ("counter", {"upstream", "reason"}),
    "errorproxy_upstream_duration_seconds": ("histogram", {"route"}),
    "errorproxy_conflicts_prevented": ("counter", {"route"}),
    "errorproxy_precondition_required": ("counter", {"route"}),
    "errorproxy_lock_wait_seconds": ("histogram", {"route"}),
    "errorproxy_config_reloads": ("counter", {"result"}),
    "errorproxy_build_info": ("gauge", {"version", "python", "aiohttp"}),
}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series


def _series() -> dict[str, set[str]]:
    """Every series name a scrape shows, with its label names."""
    series = {}
    for name, (kind, labels) in METRICS.items():
        if kind == "counter":
            series[f"{name}_total"] = labels
        elif kind == "histogram":
            series.update({f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels})
        else:
            series[name] = labels
    return series


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _promql_problems(expr: str) -> tuple[list[str], set[str]]:
    """What is wrong with `expr` against our metrics, and the labels its result can carry."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError as exc:
        return [f"does not parse: {exc}"], set()
    series, problems, used, grouped, aggregated = _series(), [], set(), set(), False
    nodes = []
    promql_parser.walk(tree, lambda node: nodes.append(node))
    for node in nodes:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name not in series:
                problems.append(f"{node.name}: not a series errorproxy exports")
                continue
            used |= series[node.name]
            problems += [f"{node.name}: no label {m.name}" for m in node.matchers.matchers
                         if m.name not in series[node.name]]
    for node in nodes:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            aggregated = True
            labels = set(node.modifier.labels)
            problems += [f"{node.op} by/without {label}: no such label" for label in sorted(labels - used)]
            if node.modifier.type == promql_parser.AggModifierType.By:
                grouped |= labels
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            labels = set(matching.labels if matching else ()) | set(node.modifier.group_labels or ())
            problems += [f"on/ignoring/group {label}: no such label" for label in sorted(labels - used)]
        elif isinstance(node, promql_parser.Call) and node.func.name in ("rate", "irate", "increase"):
            name = node.args[0].vector_selector.name
            if not name.endswith(("_total", "_bucket", "_sum", "_count")):
                problems.append(f"{node.func.name}({name}): not a counter")
    return problems, grouped if aggregated else used | TARGET_LABELS


def test_metric_contract_is_what_proxy_metrics_exports():
    # prometheus_client keeps a metric's name, type and label names in these attributes.
    exported = {m._name: (m._type, set(m._labelnames)) for m in vars(metrics).values()
                if isinstance(m, Counter | Gauge | Histogram)}
    assert exported == METRICS


@pytest.mark.parametrize(
    "expr, problem",
    [
        pytest.param("rate(errorproxy_request_total[5m])", "not a series", id="misspelt-metric"),
        pytest.param('rate(errorproxy_requests_total{upstream="a"}[5m])', "no label upstream", id="foreign-label"),
        pytest.param("sum by (kind) (rate(errorproxy_requests_total[5m]))", "by/without kind", id="bad-grouping"),
        pytest.param("errorproxy_upstream_duration_seconds > 1", "not a series", id="histogram-base-name"),
        pytest.param("rate(errorproxy_build_info[5m])", "not a counter", id="rate-of-gauge"),
        pytest.param("sum by (route) (rate(errorproxy_requests_total[5m])", "does not parse", id="unbalanced"),
        pytest.param("sum by (route) (rate(errorproxy_requests_total[5m])) / on (upstream) "
                     "sum by (route) (rate(errorproxy_intercepted_total[5m]))", "on/ignoring", id="bad-matching"),
    ],
)
def test_promql_check_catches(expr, problem):
    problems, _ = _promql_problems(expr)
    assert any(problem in p for p in problems), problems


def test_promql_check_accepts_histogram_quantiles():
    expr = "histogram_quantile(0.99, sum by (le, route) (rate(errorproxy_upstream_duration_seconds_bucket[5m]))) > 1"
    assert _promql_problems(expr) == ([], {"le", "route"})


def test_alert_file_is_one_group_of_uniquely_named_rules():
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert [set(group) for group in groups] == [{"name", "rules"}]
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names)) and all(re.fullmatch(r"Errorproxy[A-Z][A-Za-z]+", n) for n in names)


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_alert_rule(rule):
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert re.fullmatch(r"0|([0-9]+(ms|s|m|h|d|w|y))+", rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"].strip()
    problems, result_labels = _promql_problems(rule["expr"])
    assert problems == []
    templated = set(re.findall(r"\$labels\.([A-Za-z_]\w*)", " ".join(rule["annotations"].values())))
    assert templated <= result_labels, "annotations name labels the alert does not carry"


def _selected(rule: dict) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    nodes = []
    promql_parser.walk(promql_parser.parse(rule["expr"]), lambda node: nodes.append(node))
    return {(node.name, tuple(sorted((m.name, m.value) for m in node.matchers.matchers)))
            for node in nodes if isinstance(node, promql_parser.VectorSelector)}


@pytest.mark.parametrize(
    "selector, severities",
    [
        pytest.param(("errorproxy_requests_total", (("status", "409"),)), {"warning"}, id="409-share"),
        pytest.param(("errorproxy_requests_total", (("status", "5.."),)), {"warning", "critical"}, id="5xx-share"),
        pytest.param(("errorproxy_upstream_errors_total", ()), {"warning"}, id="upstream-errors"),
        pytest.param(("errorproxy_config_reloads_total", (("result", "invalid"),)), {"warning"}, id="reload-invalid"),
    ],
)
def test_alerts_cover(selector, severities):
    assert {rule["labels"]["severity"] for rule in _rules() if selector in _selected(rule)} == severities
