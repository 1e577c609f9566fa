"""``manage.py lifecycle`` prints every transition with its guards and effects; docs/lifecycle.md is its output."""

from io import StringIO
from pathlib import Path

from django.core.management import call_command

from governance import lifecycle as governance_lifecycle
from releases import lifecycle as releases_lifecycle

DOC = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"


def _output(*args: str) -> str:
    out = StringIO()
    call_command("lifecycle", *args, stdout=out)
    return out.getvalue()


def test_docs_match_the_code() -> None:
    # Regenerate with: python manage.py lifecycle --write docs/lifecycle.md
    assert DOC.read_text(encoding="utf-8") == _output(), "docs/lifecycle.md drifted from the code: regenerate it"


def test_every_declared_guard_and_effect_is_printed_under_its_transition() -> None:
    text = _output()
    for module in (releases_lifecycle, governance_lifecycle):
        for table in (module.GUARDS, module.EFFECTS):
            for event, functions in table.items():
                section = text.split(f"`{event}`", 1)[1].split("\n### ", 1)[0]
                for fn in functions:
                    assert f"`{fn.__module__}.{fn.__qualname__}`" in section, (event, fn)
    assert "stateDiagram-v2" in text
    assert "    draft --> in_review: submit" in text


def test_write_creates_the_document(tmp_path: Path) -> None:
    target = tmp_path / "lifecycle.md"
    call_command("lifecycle", "--write", str(target), stdout=StringIO())
    assert target.read_text(encoding="utf-8") == _output()
