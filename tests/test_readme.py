"""README's Python examples run as written (in order, one namespace, in a scratch folder)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 3


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPR_DATA", str(tmp_path / "data"))
    from deepr_engine.run import registry
    before = set(registry.names())
    namespace: dict = {"__name__": "readme"}
    try:
        for i, block in enumerate(python_blocks()):
            try:
                exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
            except Exception as exc:  # name the block: README is what a user copies
                raise AssertionError(f"README python block {i + 1} fails: {type(exc).__name__}: "
                                     f"{exc}\n{block}") from exc
    finally:  # methods the examples register do not leak into other tests
        for name in set(registry.names()) - before:
            registry.unregister(name)
