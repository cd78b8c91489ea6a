"""The wheel as a user gets it: built from this checkout, installed in a new venv, run away from the checkout.

The built-in pages live in templates/ at the top of the repository and ship as
the `proxy.templates` package (pyproject.toml's `package-dir`). The editable
install and every run from the checkout find them whether or not the wheel
carries them, so only an installed wheel, run where the checkout cannot be
imported, shows that they ship.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Top-level entries left out of the copy that is built: version control, the
# venv, and earlier build output, whose stale files setuptools would pack again.
_NOT_SOURCE = {".git", ".venv", "build", "dist", ".pytest_cache", "test-artifacts"}
# Importing this in the new venv says where the package and its pages came from.
_WHERE = "import json, proxy; from importlib import resources; " \
         "print(json.dumps([proxy.__file__, str(resources.files('proxy.templates') / 'base.html')]))"

# A 409 page for a German reader, rendered by the installed package.
_GERMAN = "import re; from proxy.core.problem import Problem; from proxy.http.pages import Pages; " \
          "pages = Pages(); page = pages.render(Problem(status=409), catalog=pages.texts.choose('de-CH')).decode(); " \
          "print(re.search('<html lang=\"(.*?)\">', page)[1], re.search('<title>409 (.*?) ', page)[1])"


def _ignore(directory: str, names: list[str]) -> set[str]:
    at_top = Path(directory) == ROOT
    return {name for name in names
            if name == "__pycache__" or name.endswith(".egg-info") or (at_top and name in _NOT_SOURCE)}


def _env() -> dict[str, str]:
    """This environment without anything that would put the checkout or the running venv on the path."""
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("ERRORPROXY_")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(command: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def build_wheel(source: Path, out: Path) -> Path:
    """A wheel of `source`, built by pip in an isolated environment.

    Isolated, because the build needs what pyproject.toml asks for
    (setuptools>=68, which builds wheels by itself) rather than whatever
    setuptools the running venv happens to have; pip gets it from the package index.
    """
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, source], cwd=out, timeout=300)
    [wheel] = out.glob("errorproxy-*.whl")
    return wheel


def test_the_wheel_ships_the_pages_and_runs_away_from_the_checkout(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_ignore)
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    for directory in (dist, elsewhere):
        directory.mkdir()
    wheel = build_wheel(source, dist)

    # What the wheel carries: every page and module, the embedded config, and nothing else.
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"proxy/templates/409.html", "proxy/templates/base.html", "proxy/config/embedded.yaml"} <= names
    pages = {f"proxy/templates/{path.name}" for path in (source / "templates").glob("*.html")}
    assert pages - names == set(), "built-in pages missing from the wheel"
    catalogs = {path.relative_to(source).as_posix() for path in (source / "proxy" / "locale").rglob("*.mo")}
    assert len(catalogs) == 7 and "proxy/locale/ja/LC_MESSAGES/errorproxy.mo" in catalogs
    assert catalogs - names == set(), "compiled catalogs missing from the wheel"
    assert not [name for name in names if name.endswith((".po", ".pot"))]  # the sources stay in the repository
    modules = {path.relative_to(source).as_posix() for path in (source / "proxy").rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel (a subpackage not listed in pyproject.toml?)"
    assert not [name for name in names if name.startswith(("tests/", "bench/"))]
    assert {name.split("/")[0] for name in names} == {"proxy", wheel.name.split("-py")[0] + ".dist-info"}

    # A venv of its own, without the system's or the running venv's packages; the
    # running pip installs into it (`--python`) with the dependencies from the index.
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=elsewhere, timeout=60)
    python, errorproxy = venv / "bin" / "python", venv / "bin" / "errorproxy"
    _run([sys.executable, "-m", "pip", "--python", python, "install", wheel], cwd=elsewhere, timeout=300)

    # From a directory with no checkout in it, errorproxy and its pages come from the new venv.
    package, base = map(Path, json.loads(_run([python, "-c", _WHERE], cwd=elsewhere, timeout=60).stdout))
    assert package.is_relative_to(venv) and base.is_relative_to(venv), (package, base)
    assert base.is_file()

    page = _run([errorproxy, "preview", "409", "--accept", "text/html"], cwd=elsewhere, timeout=60)
    assert page.stderr == ""
    assert page.stdout.startswith("<!doctype html>\n")
    assert page.stdout.rstrip().endswith("</html>")
    assert "<title>409 Conflict · This service</title>" in page.stdout
    assert "<h1>Someone else changed this</h1>" in page.stdout  # 409.html
    assert "--accent: #0b5fff;" in page.stdout and '<header class="brand">' in page.stdout  # base.html

    # The catalogs load from the installed package: a German page, its title from the German catalog.
    german = _run([python, "-c", _GERMAN], cwd=elsewhere, timeout=60)
    assert german.stdout == "de Konflikt\n"

    # The embedded config (proxy/config/embedded.yaml) loads, and `check` renders every page with it.
    checked = _run([errorproxy, "check", "--upstream", "http://127.0.0.1:9000"], cwd=elsewhere, timeout=60)
    assert checked.stdout.startswith("<embedded>: ok\n")
