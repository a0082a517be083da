"""The core stays pure: no web stack imported, no clock read (STYLE.md)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "warranty"

CHECK = """
import sys
import warranty
bad = sorted(
    name for name in sys.modules
    if name.split(".")[0] in {"flask", "sqlalchemy", "wtforms"} or name.startswith("flask_")
)
print("\\n".join(bad))
"""


def test_importing_warranty_loads_no_web_stack():
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"warranty imports: {result.stdout.split()}"


CLOCK_READS = re.compile(r"\.now\(|\.today\(|\.utcnow\(|time\.time\(")


def test_warranty_never_reads_the_clock():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert sources, f"no source found under {PACKAGE}"
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if CLOCK_READS.search(line)
    ]
    assert not hits, "warranty/ reads the clock; take now/today as an argument:\n" + "\n".join(hits)
