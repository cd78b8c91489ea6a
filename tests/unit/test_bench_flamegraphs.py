"""`bench/run.py --profile`: how py-spy is found, started, stopped, and where its SVGs go.

A stand-in py-spy (a Python script) prints py-spy's "Sampling process" line,
samples until its --duration ends or it gets SIGINT, as the real one does, and
then writes its own arguments as the "SVG".
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from bench import flamegraphs
from bench.procs import BenchError, Group
from bench.servers import Server

FAKE_PY_SPY = """\
import signal, sys, time
args = sys.argv[1:]
stopped = []
signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
print("py-spy> Sampling process 250 times a second. Press Control-C to exit.", flush=True)
seconds = float(args[args.index("--duration") + 1]) if "--duration" in args else 60
deadline = time.monotonic() + seconds
while not stopped and time.monotonic() < deadline:
    time.sleep(0.01)
with open(args[args.index("-o") + 1], "w") as svg:
    svg.write(" ".join(args))
"""

CANNOT_ATTACH = """\
import sys
print("Error: Permission Denied: Try running again with elevated permissions", flush=True)
sys.exit(1)
"""


@pytest.fixture
def group():
    with Group() as group:
        yield group


@pytest.fixture
def py_spy(tmp_path: Path) -> str:
    return stand_in(tmp_path, FAKE_PY_SPY)


def stand_in(tmp_path: Path, source: str) -> str:
    script = tmp_path / "bin" / "py-spy"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"#!{sys.executable}\n{source}")
    script.chmod(0o755)
    return str(script)


def server(workers: int) -> Server:
    return Server("errorproxy", 8080, types.SimpleNamespace(pid=4242), workers)


def profiler(group: Group, py_spy: str, out_dir: Path, rounds: int = 1) -> flamegraphs.Profiler:
    return flamegraphs.Profiler(group, py_spy, out_dir, rounds)


@pytest.mark.parametrize("rounds, number, expected", [(1, 1, "ok-1w.svg"), (3, 2, "ok-1w-r2.svg")],
                         ids=["one-round", "several-rounds"])
def test_svg_names(group, py_spy, tmp_path, rounds, number, expected):
    recorder = profiler(group, py_spy, tmp_path / "out", rounds)
    with recorder.during("ok-1w", number, 1)(server(1)):
        pass
    assert [path.name for path in recorder.written] == [expected]


def test_one_worker_samples_the_serving_process_for_the_load_duration(group, py_spy, tmp_path):
    recorder = profiler(group, py_spy, tmp_path)
    with recorder.during("ok-1w", 1, 1)(server(1)):
        pass
    assert (tmp_path / "ok-1w.svg").read_text() == (
        f"record --native --rate 250 --format flamegraph -o {tmp_path / 'ok-1w.svg'} --pid 4242 --duration 1")


def test_several_workers_are_sampled_under_the_supervisor(group, py_spy, tmp_path):
    recorder = profiler(group, py_spy, tmp_path)
    with recorder.during("ok-2w", 1, 1)(server(2)):
        pass
    assert (tmp_path / "ok-2w.svg").read_text().endswith("--pid 4242 --duration 1 --subprocesses")


def test_a_load_of_unknown_length_is_sampled_until_it_ends(group, py_spy, tmp_path):
    recorder = profiler(group, py_spy, tmp_path)
    with recorder.during("upload-1w", 1, None)(server(1)):  # the stand-in would sample 60 s unless interrupted
        pass
    assert "--duration" not in (tmp_path / "upload-1w.svg").read_text()


def test_a_failed_load_keeps_no_svg(group, py_spy, tmp_path):
    recorder = profiler(group, py_spy, tmp_path)
    with pytest.raises(RuntimeError), recorder.during("ok-1w", 1, None)(server(1)):
        raise RuntimeError("wrk failed")
    assert recorder.written == [] and not (tmp_path / "ok-1w.svg").exists()


def test_py_spy_that_cannot_attach_fails_the_run_with_its_output(group, tmp_path):
    recorder = profiler(group, stand_in(tmp_path, CANNOT_ATTACH), tmp_path)
    with pytest.raises(BenchError, match="exited with 1 before sampling:\nError: Permission Denied"):
        with recorder.during("ok-1w", 1, 1)(server(1)):
            pytest.fail("the load ran without a profiler")


def test_missing_py_spy_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(flamegraphs.shutil, "which", lambda name: None)
    with pytest.raises(BenchError, match=r"--profile needs py-spy, which is not installed: \S+ -m pip install py-spy"):
        flamegraphs.find_py_spy(str(tmp_path / "venv" / "bin" / "python"))


def test_py_spy_next_to_errorproxys_python_comes_first(py_spy, monkeypatch):
    monkeypatch.setattr(flamegraphs.shutil, "which", lambda name: "/usr/bin/py-spy")
    assert flamegraphs.find_py_spy(str(Path(py_spy).parent / "python")) == py_spy
