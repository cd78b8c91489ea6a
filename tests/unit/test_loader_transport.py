"""Loading `listen`, `listen_mode`, `tls`, upstream URLs and an upstream's `tls`: values and problems."""

from __future__ import annotations

import textwrap

import pytest
from yarl import URL

from proxy.config.loader import ConfigError, from_text
from proxy.config.values import show
from proxy.core.settings import Address, ListenerTLS, UnixAddress, UpstreamTLS


def _load(top: str = "", upstream: str = "url: http://127.0.0.1:9000"):
    return from_text(textwrap.dedent(top) + f"""
upstreams:
  app: {{{upstream}}}
routes: [{{match: {{path_prefix: /}}, upstream: app}}]
""")


def _problems(top: str = "", upstream: str = "url: http://127.0.0.1:9000") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(top, upstream)
    return caught.value.problems


def test_listener_settings():
    settings = _load('listen: unix:/run/errorproxy.sock\nlisten_mode: "0660"\n'
                     "tls: {cert: /c.pem, key: /k.pem, client_ca: /ca.pem, redirect_from: 0.0.0.0:8080, redirect_port: 443}")
    assert settings.listen == UnixAddress("/run/errorproxy.sock")
    assert settings.listen_mode == 0o660
    assert settings.tls == ListenerTLS("/c.pem", "/k.pem", "/ca.pem", Address("0.0.0.0", 8080), 443)


@pytest.mark.parametrize("url, tls, expected", [
    pytest.param("https://api.example.com/v1", "", UpstreamTLS(), id="https-defaults"),
    pytest.param("https://10.0.0.5", ", tls: {ca_file: /ca.pem, server_name: API.Example.com, min_version: 1.3}",
                 UpstreamTLS(ca_file="/ca.pem", server_name="api.example.com", min_version="1.3"), id="https-block"),
    pytest.param("https://10.0.0.5", ", tls: {verify: false}", UpstreamTLS(verify=False), id="no-verify"),
    pytest.param("https://10.0.0.5", ", tls: {client_cert: /both.pem}", UpstreamTLS(client_cert="/both.pem"),
                 id="client-cert-with-its-key"),
    pytest.param("http://10.0.0.5", "", None, id="http-has-none"),
    pytest.param("unix:/run/app.sock:/base", "", None, id="unix"),
])
def test_upstream_tls_settings(url, tls, expected):
    upstream = _load(upstream=f"url: '{url}'{tls}").upstreams["app"]
    assert upstream.url == URL(url)
    assert upstream.tls == expected


_SHAPES = "(http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base])"


@pytest.mark.parametrize("top, upstream, problem", [
    pytest.param("listen: unix:run.sock", "url: http://a", 'listen: "unix:run.sock" must name an absolute socket path '
                 "(unix:/run/app.sock)", id="relative-listen-socket"),
    pytest.param(f"listen: unix:/{'x' * 120}", "url: http://a", f"listen: {show('unix:/' + 'x' * 120)} names a socket "
                 "path longer than the 107 bytes the system allows", id="long-socket-path"),
    pytest.param('listen_mode: "0660"', "url: http://a", 'listen_mode: "0660" applies to a Unix-socket listen '
                 "(unix:/PATH) only", id="mode-without-unix"),
    pytest.param("listen: unix:/run/p.sock\nlisten_mode: 660", "url: http://a",
                 'listen_mode: 660 is not a file mode: write it quoted, in octal, as "0660"', id="mode-in-decimal"),
    pytest.param("tls: {cert: /c.pem}", "url: http://a", "tls.key: missing: a TLS listener needs a certificate (cert) "
                 "and its key (key), as PEM files", id="listener-without-key"),
    pytest.param("tls: {cert: /c.pem, key: /k.pem, redirect_port: 70000}", "url: http://a",
                 "tls.redirect_port: 70000 is not a port (1 to 65535)", id="bad-redirect-port"),
    pytest.param("tls: {cert: /c.pem, key: /k.pem, ocsp: true}", "url: http://a",
                 "tls.ocsp: unknown key (known keys: cert, client_ca, key, redirect_from, redirect_port)", id="unknown-key"),
    pytest.param("", "url: 'unix:run/app.sock'", f'upstreams.app.url: "unix:run/app.sock" is not an upstream URL {_SHAPES}',
                 id="relative-upstream-socket"),
    pytest.param("", "url: 'unix:/run/app.sock:base'", f'upstreams.app.url: "unix:/run/app.sock:base" is not an '
                 f"upstream URL {_SHAPES}", id="base-without-slash"),
    pytest.param("", "url: http://a, tls: {verify: false}", 'upstreams.app.tls: {"verify": false} applies to https:// '
                 "upstreams only", id="tls-on-http"),
    pytest.param("", "targets: [https://a, http://b]", 'upstreams.app.targets: ["http", "https"] mixes schemes: every '
                 "target of an upstream is http, https or unix alike", id="mixed-schemes"),
    pytest.param("", "url: https://a, tls: {verify: 'no'}", 'upstreams.app.tls.verify: "no" must be true or false',
                 id="verify-not-boolean"),
    pytest.param("", "url: https://a, tls: {min_version: 1.1}", 'upstreams.app.tls.min_version: 1.1 must be "1.2" or "1.3"',
                 id="old-min-version"),
    pytest.param("", "url: https://a, tls: {server_name: 'a b'}", 'upstreams.app.tls.server_name: "a b" is not a host '
                 "name (api.example.com)", id="bad-server-name"),
    pytest.param("", "url: https://a, tls: {client_key: /k.pem}", "upstreams.app.tls.client_cert: missing: client_key "
                 "is the key of a client_cert", id="key-without-cert"),
    pytest.param("", "url: https://a, tls: {verify: false, ca_file: /ca.pem}", 'upstreams.app.tls.ca_file: "/ca.pem" '
                 "is not used with verify: false: remove one of them", id="ca-file-unused"),
])
def test_problems_name_path_and_value(top, upstream, problem):
    assert problem in _problems(top, upstream)
