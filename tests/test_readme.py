"""The README's library example runs as written against the reference server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_library_example_runs_against_the_reference_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (example,) = [b for b in _python_blocks() if "MFOClient(" in b]
    assert '"http://127.0.0.1:8081/api", auth="dev-token"' in example
    with run_devserver(DevServerSettings(port=0, job_duration=0.2)) as url:
        exec(compile(example.replace("http://127.0.0.1:8081", url), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["event", "resource", "chat", "job"]
    assert out[-1].split()[2:4] == ["succeeded", "{'echo':"]
