"""restate_tutorial.testing, the pytest plugin, used the way a user would: a test file of their
own, run by pytest in a subprocess, in each harness mode."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from restate_tutorial.lab.binaries import PROJECT_DIR, RESTATE_VERSION
from restate_tutorial.lab.server import CONFIG_FILE

pytest_plugins = ["pytester"]

NON_DETERMINISTIC = '''
import itertools
from datetime import timedelta

import restate
from restate import Context, RunOptions

executions = itertools.count()  # a value read outside ctx.run: it differs on a replay
service = restate.Service("Moody")


@service.handler()
async def decide(ctx: Context, request: dict) -> str:
    if next(executions) == 0:  # the first execution takes one branch, any replay the other
        return await ctx.run_typed("pick", lambda: "a step", RunOptions())
    await ctx.sleep(timedelta(milliseconds=1))
    return "a sleep"


def test_decides(restate_lab):
    restate_lab.serve(service)
    assert restate_lab.ingress.call("Moody", "decide", {}) == "a step"
'''

RAISES = '''
import restate
from restate import Context

service = restate.Service("Broken")


@service.handler()
async def work(ctx: Context, request: dict) -> str:
    raise RuntimeError("a bug in the handler")


def test_works(restate_lab):
    restate_lab.serve(service)
    assert restate_lab.ingress.call("Broken", "work", {}, timeout=20) == "done"
'''


def test_the_modes_catch_a_non_deterministic_handler_and_fail_fast_with_the_handlers_error(
        pytester: pytest.Pytester) -> None:
    """Under --restate-always-replay --restate-no-retries: the handler that passes a plain run
    (the user's project below runs it) fails with Restate's journal mismatch, and the raising
    one at once with its own error (without the modes: retried until the 20 s timeout)."""
    pytester.makepyfile(test_moody=NON_DETERMINISTIC, test_broken=RAISES)
    run = pytester.runpytest_subprocess("-q", "--restate-always-replay", "--restate-no-retries")
    run.assert_outcomes(failed=2)
    output = run.stdout.str()
    assert "IngressError" in output and "mismatch" in output.lower(), output[-3000:]
    assert "HTTP 500: RuntimeError('a bug in the handler')" in output, output[-3000:]


LEAVES_ONE_RUNNING = '''
import asyncio

import restate
from restate import Context

service = restate.Service("Forever")


@service.handler()
async def wait(ctx: Context, request: dict) -> None:
    await asyncio.sleep(3600)  # never returns


def test_leaves_an_invocation_running(restate_lab):
    restate_lab.serve(service)
    restate_lab.ingress.send("Forever", "wait", {})


def test_waits_for_one_that_never_answers(restate_lab):
    restate_lab.serve(service)
    restate_lab.ingress.call("Forever", "wait", {}, timeout=2)
'''


def test_a_lab_that_cannot_start_says_the_fix_in_one_line(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTATE_SERVER_BIN", str(pytester.path / "no-such-binary"))
    pytester.makepyfile("def test_x(restate_lab):\n    pass\n")
    run = pytester.runpytest_subprocess("-q")
    run.assert_outcomes(errors=1)
    assert "is not an executable" in run.stdout.str() and "RESTATE_SERVER_BIN" in run.stdout.str()


A_USERS_PROJECT = '''
import restate
from restate import Context

greeter = restate.Service("Greeter")
broken = restate.Service("Broken")


@greeter.handler()
async def greet(ctx: Context, request: dict) -> str:
    return f"Hello {request['name']}!"


@greeter.handler()
async def echo(ctx: Context, text: str) -> str:
    return text


@broken.handler()
async def work(ctx: Context, request: dict) -> str:
    raise RuntimeError("a bug in the handler")


def test_a_str_body_is_a_json_string(restate_lab):
    restate_lab.serve(greeter)
    assert restate_lab.ingress.call("Greeter", "echo", "approved") == "approved"


def test_the_sdks_typed_client_calls_by_reference(restate_lab, restate_client):
    restate_lab.serve(greeter)
    assert restate_client.service_call(greet, {"name": "Ada"}) == "Hello Ada!"


def test_waiting_for_an_invocation(restate_lab, restate_wait):
    restate_lab.serve(greeter)
    sent = restate_lab.ingress.send("Greeter", "greet", {"name": "Bo"})
    assert restate_wait.until_ended(sent) == "Hello Bo!"


def test_a_handler_that_raises(restate_ingress, restate_lab):
    restate_lab.serve(broken)
    restate_ingress.call("Broken", "work", {})
'''


def _readme_block(containing: str) -> str:
    readme = (PROJECT_DIR / "README.md").read_text()
    return next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
                if containing in block)


def test_a_users_project_gets_json_the_sdk_client_and_a_clear_timeout(
        pytester: pytest.Pytester) -> None:
    """Also the README's examples, as copied (the plain one, and the crash test); a
    non-deterministic handler, which passes a plain run; and an invocation left running,
    which does not hang the session (the lab stops with it)."""
    pytester.makepyfile(test_project=A_USERS_PROJECT, test_moody=NON_DETERMINISTIC,
                        test_forever=LEAVES_ONE_RUNNING,
                        test_readme=_readme_block("def test_greets_by_reference"),
                        test_readme_crashes=_readme_block("restate_crash_test(start, check)"))
    # A hang would hit the subprocess's timeout; the messages below say the 3 s were kept.
    run = pytester.runpytest_subprocess("-q", "--restate-call-timeout", "3", timeout=180)
    run.assert_outcomes(passed=8, failed=2)
    assert "LabError: No answer from /Forever/wait within 2 s" in run.stdout.str()
    output = run.stdout.str()
    # What Restate's records say, in the failure itself; not the plugin's own client code.
    assert "No answer from /Broken/work within 3 s" in output, output[-3000:]
    assert "retries, last failure: [500 Internal] RuntimeError('a bug in the handler')" in output
    assert "self._http.request" not in output and "def _request" not in output
    assert "warning" not in output.splitlines()[-1]  # kafka-python's are the plugin's to hide


def test_an_overridden_restate_lab_is_named_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef restate_lab():\n"
                          "    return {'ingress': 'mine'}\n")
    pytester.makepyfile("def test_x(restate_ingress):\n    pass\n")
    run = pytester.runpytest_subprocess("-q")
    run.assert_outcomes(errors=1)
    assert "the fixture restate_lab is overridden (by a conftest.py?) with a dict" \
        in run.stdout.str()
    assert "AttributeError" not in run.stdout.str()


WITHOUT_THE_COURSE = '''
import sys


class WithoutTheCourse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jupyterlab", "matplotlib", "openai", "agents"):
            raise ModuleNotFoundError(f"{name} is not installed (the [course] extra)")


sys.meta_path.insert(0, WithoutTheCourse())
'''

README_EXAMPLE = '''
import restate
from restate import Context

import restate_tutorial

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, request: dict) -> str:
    return f"Hello {request['name']}!"


def test_greets(restate_lab):
    assert "site-packages" in restate_tutorial.__file__  # the wheel, not the checkout
    restate_lab.serve(greeter)  # once per test session; a new deployment of your code
    assert restate_lab.ingress.call("Greeter", "greet", {"name": "Ada"}) == "Hello Ada!"
'''


def test_the_readme_example_passes_from_a_wheel_installed_in_a_fresh_venv(
        tmp_path: Path) -> None:
    """Not editable, not in the checkout: the package built as a wheel, installed in a new
    venv (its dependencies are this venv's), used from a directory of its own."""
    # Built from a copy of the checkout (setuptools builds in place: build/, *.egg-info).
    source = tmp_path / "source"
    shutil.copytree(PROJECT_DIR, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".tools", ".lab", ".git", "notebooks", "test-screenshots", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("restate_tutorial-*.whl")
    # The wheel carries the top-level restate.toml (one source: the package's is a link to it).
    assert zipfile.ZipFile(wheel).read("restate_tutorial/lab/restate.toml") == \
        (PROJECT_DIR / "restate.toml").read_bytes()
    assert CONFIG_FILE.resolve() == PROJECT_DIR / "restate.toml"
    # A slim install: the course's packages are an extra, not what the plugin pulls in.
    metadata = zipfile.ZipFile(wheel).read(next(
        n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))).decode()
    required = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for course in ("jupyterlab", "matplotlib", "openai", "ipykernel"):
        assert all(course not in line or 'extra == "course"' in line for line in required), \
            required
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = venv.glob("lib/python*/site-packages")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(site), str(wheel)], check=True, timeout=300)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # This venv's dependencies include the course's: hide them, as a slim install has none.
    (site / "sitecustomize.py").write_text(WITHOUT_THE_COURSE)
    hidden = subprocess.run([str(venv / "bin" / "python"), "-c", "import matplotlib"],
                            capture_output=True, text=True)
    assert "the [course] extra" in hidden.stderr, hidden.stderr
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_greeter.py").write_text(README_EXAMPLE)
    tools = tmp_path / "tools"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RESTATE_", "PYTEST_")) and key != "PYTHONPATH"}
    env |= {"RESTATE_TUTORIAL_TOOLS": str(tools), "PATH": "/usr/bin:/bin"}
    command = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    # No restate-server anywhere yet: the error names the one command that installs it.
    missing = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 1, missing.stdout[-3000:]
    assert "No restate-server binary found: run `python -m restate_tutorial install-restate`" \
        in missing.stdout, missing.stdout[-3000:]
    # What that command leaves behind (npm's node_modules), taken from this checkout's copy.
    tools.mkdir()
    (tools / "node_modules").symlink_to(PROJECT_DIR / ".tools" / "node_modules")
    run = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:]


ROUND_TWO = '''
import asyncio
import random

import pytest
import restate
from restate import Context, RunOptions, TerminalError

from restate_tutorial.lab import IngressError, LabError

shop = restate.Service("Shop")
coin = restate.Service("Coin")


@shop.handler()
async def price(ctx: Context, sku: str) -> int:
    if sku != "lamp":
        raise TerminalError(f"unknown sku: {sku}", 404)
    return 40


@shop.handler()
async def slow(ctx: Context, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@coin.handler()
async def toss(ctx: Context, player: str) -> str:
    # BUG: a step named by a coin outside the journal: a replay may take the other name.
    return await ctx.run_typed(random.choice(["heads", "tails"]), lambda: "x", RunOptions())


def test_the_typed_client_says_the_handlers_message(restate_lab, restate_client):
    restate_lab.serve(shop)
    with pytest.raises(IngressError, match="HTTP 404: unknown sku: lampp"):
        restate_client.service_call(price, "lampp")


def test_the_typed_client_waits_the_plugins_timeout(restate_lab, restate_client):
    restate_lab.serve(shop)
    assert restate_client.service_call(slow, 1.0) == "done"
    with pytest.raises(LabError, match=r"No answer from /Shop/slow within 2 s.*running"):
        restate_client.service_call(slow, 30.0)


def test_until_ended_raises_the_failure(restate_lab, restate_wait):
    restate_lab.serve(shop)
    sent = restate_lab.ingress.send("Shop", "price", "chair")
    with pytest.raises(IngressError, match="unknown sku: chair"):
        restate_wait.until_ended(sent)


def test_serves_the_shop(restate_lab):
    restate_lab.serve(shop)
    assert restate_lab.ingress.call("Shop", "price", "lamp") == 40


def test_forgets_to_serve_the_shop(restate_lab):  # fails: what the test above served is gone
    restate_lab.ingress.call("Shop", "price", "lamp")


def test_tosses(restate_lab, restate_client):
    restate_lab.serve(coin)
    for _ in range(6):
        assert restate_client.service_call(toss, "Ada") == "x"
'''

CRASH_TEST_UNDER_NO_RETRIES = '''
import restate
from restate import Context

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}!"


def test_crashes(restate_lab, restate_crash_test):
    restate_lab.serve(greeter)
    restate_crash_test(lambda run: restate_lab.ingress.send("Greeter", "greet", run),
                       lambda run, invocation: None)
'''


def test_round_two_the_client_the_waits_the_stubs_and_the_modes_never_pass_silently(
        pytester: pytest.Pytester) -> None:
    """The typed client fails as the ingress client does; until_ended raises; a test that
    forgets to serve fails in the suite too; a mismatch that retries hid fails the test
    (--restate-always-replay alone); a crash test under --restate-no-retries fails in one
    sentence instead of passing with killed runs."""
    pytester.makepyfile(test_round_two=ROUND_TWO)
    plain = pytester.runpytest_subprocess("-q", "--restate-call-timeout", "2",
                                          "-k", "not tosses", timeout=120)
    plain.assert_outcomes(passed=4, failed=1)
    output = plain.stdout.str()
    assert "test_forgets_to_serve_the_shop" in output and "HTTP 404" in output, output[-2000:]
    kept = re.search(r"restate-server's log of this session is kept: (\S+)", output)
    assert kept and "Restate" in Path(kept[1]).read_text(), output[-2000:]
    Path(kept[1]).unlink()
    assert "httpx" not in output.split("short test summary")[0].split("test_forgets")[0]
    replayed = pytester.runpytest_subprocess("-q", "--restate-always-replay", "-k", "tosses",
                                             timeout=120)
    replayed.assert_outcomes(failed=1)
    assert "journal mismatch during this test" in replayed.stdout.str(), \
        replayed.stdout.str()[-2000:]
    pytester.makepyfile(test_round_two="", test_crash=CRASH_TEST_UNDER_NO_RETRIES)
    crashed = pytester.runpytest_subprocess("-q", "--restate-no-retries", timeout=120)
    crashed.assert_outcomes(failed=1)
    assert "restate_crash_test needs Restate's retries" in crashed.stdout.str()


def test_the_plugin_costs_nothing_in_a_run_that_uses_none_of_its_fixtures() -> None:
    """pytest imports the plugin in every run of an environment it is installed in: its
    module imports neither the SDK, nor the lab, nor an HTTP client until a fixture is used."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, pytest; before = set(sys.modules); "
         "import restate_tutorial.testing; print(sorted(set(sys.modules) - before))"],
        capture_output=True, text=True, check=True).stdout
    for heavy in ("'restate'", "'httpx'", "'restate_tutorial.lab'", "'kafka'"):
        assert heavy not in loaded, loaded


@pytest.mark.parametrize(("options", "packages"), [
    ([], ["restate-server", "restate", "restatectl"]),
    (["--server-only"], ["restate-server"]),
])
def test_install_restate_asks_npm_for_the_pinned_packages(
        tmp_path: Path, options: list[str], packages: list[str]) -> None:
    """What `install-restate` asks npm for (npm here is a stand-in that writes its arguments:
    the real download is 216 MB for restate-server alone, 455 MB for all three)."""
    (tmp_path / "bin").mkdir()
    npm = tmp_path / "bin" / "npm"
    npm.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'asked'}\n")
    npm.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
           "RESTATE_TUTORIAL_TOOLS": str(tmp_path / "tools")}
    done = subprocess.run([sys.executable, "-m", "restate_tutorial", "install-restate",
                           *options], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    asked = (tmp_path / "asked").read_text().split()
    assert [a.removeprefix("@restatedev/").split("@")[0] for a in asked if "@restatedev" in a] \
        == packages
    assert all(a.endswith(f"@{RESTATE_VERSION}") for a in asked if "@restatedev" in a)


TRACED = '''
import restate
from restate import Context

service = restate.Service("Traced")


@service.handler()
async def work(ctx: Context, request: dict) -> str:
    return "done"


def test_works(restate_lab):
    restate_lab.serve(service)
    assert restate_lab.ingress.call("Traced", "work", {}) == "done"
'''


def test_otel_exporter_otlp_endpoint_traces_a_users_tests(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, the plugin's lab sends restate-server's spans and
    the service host's to it."""
    from restate_tutorial.lab.traces import TraceCollector
    from restate_tutorial.tracing import SERVICE_NAME

    collector = TraceCollector().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # restate-server's batches: 5 s
    try:
        pytester.makepyfile(test_traced=TRACED)
        run = pytester.runpytest_subprocess("-q")
        run.assert_outcomes(passed=1)
        collector.wait_for(lambda spans: {("Restate", "invocation-attempt Traced/work"),
                                          (SERVICE_NAME, "service host Traced/work")}
                           <= {(s.service, s.name) for s in spans}, 30, "the test's trace")
    finally:
        collector.stop()
