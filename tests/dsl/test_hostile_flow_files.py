"""Flow files that are hostile or heavy: each is refused quickly, in one line, naming the file and the limit.

Each case runs `rtflow validate` as a real subprocess and measures it from outside: the exit code, one line on
stderr, no traceback, its wall time and its peak memory (the child's own accounting).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEAD = "providers: [openai:chat:gpt-4.1-mini]\nprompts: ['{{ q }}']\n"
LAUGHS = "lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 10)
)


_MEASURED = """
import os, resource, subprocess, sys
child = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(child.returncode)
"""
"""Runs a command and prints its peak RSS (KB). Started fresh, so the command it forks starts small: a child forked
straight from the test process would inherit the test process's high-water mark (Linux counts it at the fork),
which says how big the test run is, not the command."""


def _validate(flow: Path) -> tuple[int, str, float, float]:
    """rtflow validate in a child process: exit code, stderr, wall seconds, and that child's own peak RSS in MB."""
    err_path = flow.with_suffix(".stderr")
    started = time.perf_counter()
    with err_path.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, sys.executable, "-m", "rtflow.cli", "validate", str(flow)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=False,
        )
    wall = time.perf_counter() - started
    return done.returncode, err_path.read_text(), wall, int(done.stdout.split()[-1]) / 1024


def _assert_refused(flow: Path, *words: str) -> None:
    code, err, wall, peak = _validate(flow)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(flow) in err
    for word in words:
        assert word in err, err
    # Generous against a noisy machine: what matters is that nothing grows without bound.
    assert wall < 5, wall
    assert peak < 200, peak


def test_billion_laughs_in_the_flow_is_refused(tmp_path: Path) -> None:
    flow = tmp_path / "laughs.yaml"
    flow.write_text(HEAD + LAUGHS + "tests: [{vars: {q: *l9}}]\n")
    _assert_refused(flow, "aliases expand the document beyond 5,000,000 nodes")


def test_billion_laughs_in_a_var_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vars.yaml").write_text(LAUGHS)
    flow = tmp_path / "flow.yaml"
    flow.write_text(HEAD + "tests:\n  - vars: {q: file://vars.yaml}\n")
    _assert_refused(flow, "tests.0.vars.q", "vars.yaml is not valid YAML", "5,000,000 nodes")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    flow = tmp_path / "deep.yaml"
    flow.write_text(HEAD + "tests: [{vars: {q: " + "[" * 20_000 + "]" * 20_000 + "}}]\n")
    _assert_refused(flow, "nest")


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "tests: &t [{vars: {q: *t}}]\n",
        "providers:\n  - &p {id: 'openai:chat:m', fallback: *p}\nprompts: ['{{ q }}']\ntests: [{vars: {q: 1}}]\n",
    ],
    ids=["self-reference", "fallback-cycle"],
)
def test_alias_cycles_are_refused(tmp_path: Path, text: str) -> None:
    flow = tmp_path / "cycle.yaml"
    flow.write_text(text)
    _assert_refused(flow, "refers to a node that contains it (a cycle)")


@pytest.mark.parametrize("target", ["/dev/zero", "loop"], ids=["device", "symlink-loop"])
def test_a_prompt_that_is_not_a_regular_file_is_refused(tmp_path: Path, target: str) -> None:
    link = tmp_path / "prompt.txt"
    if target == "loop":
        os.symlink(tmp_path / "other.txt", link)
        os.symlink(link, tmp_path / "other.txt")
    else:
        os.symlink(target, link)
    flow = tmp_path / "flow.yaml"
    flow.write_text("providers: [openai:chat:gpt-4.1-mini]\nprompts: [file://prompt.txt]\ntests: [{}]\n")
    _assert_refused(flow, "prompts.0")


def test_a_nul_byte_in_the_flow_is_refused(tmp_path: Path) -> None:
    flow = tmp_path / "nul.yaml"
    flow.write_bytes(HEAD.encode() + b"tests: [{vars: {q: a\x00b}}]\n")
    _assert_refused(flow, "YAML")
