"""The README stays true about the repository: every file or folder it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `path/like/this.py` in backticks, or a relative markdown link target
FILE_TYPES = "py|md|json|toml|lock|txt|conf|yaml|yml"
BACKTICKED = re.compile(rf"`((?:[\w.-]+/)+[\w.-]*|[\w-]+\.(?:{FILE_TYPES}))`")
# URL paths, rates (60/m), time zones, and what make run creates at run time (.run/)
NOT_PATHS = re.compile(r"/|\d+/[smhd]$|[A-Z][a-z]+/[A-Z]|\.run/")
LINKED = re.compile(r"\]\((?!https?://|#)([^)\s]+)\)")


def test_every_path_the_readme_names_exists():
    text = (ROOT / "README.md").read_text()
    named = {m for m in BACKTICKED.findall(text) if not NOT_PATHS.match(m)}
    named |= set(LINKED.findall(text))

    missing = sorted(path for path in named if not (ROOT / path.split("#")[0]).exists())

    assert named, "the pattern found no paths at all"
    assert missing == []
