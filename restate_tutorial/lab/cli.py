"""The official `restate` CLI, pointed at a lab."""

from __future__ import annotations

import os
import re
import subprocess

from .binaries import restate_cli_binary, restatectl_binary
from .errors import LabError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def restate_cli(admin_url: str, ingress_url: str, *args: str, timeout: float = 30.0) -> str:
    """Run ``restate <args>`` against the given Restate; returns what it printed.

    ``-y`` (answer yes to prompts) is added; colours are stripped.
    """
    env = {**os.environ, "RESTATE_ADMIN_URL": admin_url, "RESTATE_INGRESS_URL": ingress_url,
           "NO_COLOR": "1"}
    command = [str(restate_cli_binary()), "-y", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        why = _ANSI.sub("", done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"`restate {' '.join(args)}` failed: {why[-1] if why else done.returncode}")
    return _ANSI.sub("", done.stdout)


def restatectl(node_urls: list[str], *args: str, timeout: float = 30.0) -> str:
    """Run ``restatectl <args>`` against the nodes' fabric addresses (port 5122 by default)."""
    command = [str(restatectl_binary()), *args, "--address", ",".join(node_urls)]
    done = subprocess.run(command, env={**os.environ, "NO_COLOR": "1"}, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        why = _ANSI.sub("", done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"`restatectl {' '.join(args)}` failed: "
                       f"{why[-1] if why else done.returncode}")
    return _ANSI.sub("", done.stdout)
