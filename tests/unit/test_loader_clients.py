"""loader: the client-side limits and header policy (server.body_timeout, server.send_timeout,
allow_underscores_in_headers)."""

from __future__ import annotations

import pytest

from proxy.config.loader import ConfigError, from_text
from proxy.ops.reload import restart_needed

VALID = "upstreams: {legacy: 'http://127.0.0.1:9000'}\nroutes: [{match: {path_prefix: /}, upstream: legacy}]\n"


def test_defaults_are_nginx_s() -> None:
    settings = from_text(VALID)
    assert (settings.server.body_timeout, settings.server.send_timeout) == (60.0, 60.0)
    assert settings.allow_underscores_in_headers is False


def test_values_are_read() -> None:
    settings = from_text(VALID + "server: {body_timeout: 15s, send_timeout: 1m30s}\n"
                                 "allow_underscores_in_headers: true\n")
    assert (settings.server.body_timeout, settings.server.send_timeout) == (15.0, 90.0)
    assert settings.allow_underscores_in_headers is True


def test_zero_turns_a_timeout_off() -> None:
    settings = from_text(VALID + "server: {body_timeout: 0, send_timeout: 0s}\n")
    assert (settings.server.body_timeout, settings.server.send_timeout) == (0.0, 0.0)


@pytest.mark.parametrize(("extra", "problem"), [
    pytest.param("server: {body_timeout: soon}\n", 'server.body_timeout: "soon" is not a duration', id="body-timeout"),
    pytest.param("server: {send_timeout: -1s}\n", 'server.send_timeout: "-1s" is not a duration', id="send-timeout"),
    pytest.param("allow_underscores_in_headers: yes please\n",
                 'allow_underscores_in_headers: "yes please" must be true or false', id="underscores-not-a-boolean"),
    pytest.param("allow_underscores_in_headers: 1\n",
                 "allow_underscores_in_headers: 1 must be true or false", id="underscores-a-number"),
    pytest.param("server: {allow_underscores_in_headers: true}\n",
                 'server.allow_underscores_in_headers: unknown key', id="underscores-is-top-level"),
])
def test_bad_values_are_reported_with_their_path(extra: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_text(VALID + extra)
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_a_reload_applies_body_timeout_and_warns_that_send_timeout_takes_a_restart() -> None:
    """send_timeout is fixed when a connection's handler is made; body_timeout is read by each request."""
    old = from_text(VALID)
    new = from_text(VALID + "server: {body_timeout: 5s, send_timeout: 5s}\nallow_underscores_in_headers: true\n")
    assert restart_needed(old, new) == ["server.send_timeout changed: takes a restart; the old values stay"]


def test_a_reload_warns_that_idle_poll_takes_a_restart() -> None:
    """The poller is made once, when the server starts."""
    old = from_text(VALID)
    new = from_text(VALID + "server: {idle_poll: 1ms}\n")
    assert new.server.idle_poll == pytest.approx(0.001)
    assert restart_needed(old, new) == ["server.idle_poll changed: takes a restart; the old values stay"]
