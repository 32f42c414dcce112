"""What `import rtflow` and the library leave alone: heavy modules not loaded, the host's logging not touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import structlog

import rtflow

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["pydantic", "networkx", "websockets", "httpx", "structlog", "jinja2", "numpy", "anyio", "yaml"]


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_rtflow_loads_no_heavy_dependency() -> None:
    """The public names resolve on first use, so importing the package pays for none of its dependencies."""
    loaded = _modules_after("import rtflow")
    assert not [name for name in HEAVY if name in loaded]
    assert "rtflow.api" not in loaded


def test_the_cli_version_loads_no_command_module() -> None:
    """`rtflow --version` needs click and the version; the commands load when they are used."""
    loaded = _modules_after(
        "import sys\nfrom rtflow.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    )
    assert not [name for name in [*HEAVY, "rtflow.cli.run_command", "rtflow.sim"] if name in loaded]


def test_validate_needs_no_network_library_and_no_networkx(tmp_path: Path) -> None:
    """Loading and compiling a flow imports neither the providers' transports nor networkx."""
    loaded = _modules_after(
        f"import rtflow\nrtflow.compile(rtflow.load({str(ROOT / 'flows' / 'conversation.yaml')!r}))"
    )
    assert not [name for name in ["networkx", "websockets", "rtflow.runner.scheduler", "rtflow.sim"] if name in loaded]


def test_a_text_run_loads_neither_numpy_nor_the_report_renderers(tmp_path: Path) -> None:
    """What a text run needs (the runner, the Realtime provider, the JSONL stream) leaves numpy (audio only) and
    the HTML, JUnit and compare views (an export only) unloaded, so a run starts without paying for them."""
    loaded = _modules_after(
        "import rtflow.api, rtflow.providers.openai_realtime, rtflow.providers.openai_chat, rtflow.runner.writer\n"
        "import rtflow.results.report as report\nreport.JsonlWriter"
    )
    unwanted = ["numpy", "rtflow.results.report.html", "rtflow.results.report.junit", "rtflow.js.bridge"]
    assert not [name for name in unwanted if name in loaded]
    assert "rtflow.results.report.data" in loaded  # the probe did reach the report package's JSONL writer


def test_a_run_leaves_the_hosts_structlog_configuration_untouched(tmp_path: Path) -> None:
    """An application that configured structlog keeps its configuration; rtflow's events use rtflow's pipeline."""
    host_events: list[dict[str, object]] = []

    def host_processor(_logger: object, _method: str, event_dict: dict[str, object]) -> str:
        host_events.append(dict(event_dict))
        return ""

    saved = structlog.get_config()
    structlog.configure(processors=[host_processor], logger_factory=structlog.ReturnLoggerFactory())
    try:
        configured = structlog.get_config()
        result = rtflow.run(ROOT / "flows" / "conversation.yaml", sim=True, db=tmp_path / "rtflow.db")
        assert result.counts.get("passed") == result.run.total_turns
        assert structlog.get_config() == configured
        structlog.get_logger().info("host.event")
        assert [event["event"] for event in host_events] == ["host.event"]  # no rtflow event went to the host
    finally:
        structlog.configure(**saved)


def test_help_lists_every_command_without_loading_the_library() -> None:
    """`rtflow --help` lists the commands from their light definitions; their bodies load when run."""
    loaded = _modules_after("from rtflow.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not [
        name
        for name in ["pydantic", "rich", "rtflow.results.store", "rtflow.api", "rtflow.sim.server"]
        if name in loaded
    ]


def test_the_export_help_names_exactly_the_export_formats() -> None:
    from rtflow.cli.results_commands import EXPORT_SUFFIXES_HELP
    from rtflow.results.report import EXPORT_FORMATS

    assert ", ".join(EXPORT_FORMATS) == EXPORT_SUFFIXES_HELP
