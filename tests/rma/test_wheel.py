"""The wheel carries templates, static files and migrations (STYLE habit 3).

Builds the wheel, installs it (without dependencies) into a fresh venv that borrows the
test venv's third-party packages, and renders a page from the installed copy, outside
the checkout.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, sys
    import rma
    assert os.path.realpath(rma.__file__).startswith(os.path.realpath(sys.prefix)), rma.__file__
    from rma import create_app
    app = create_app({"TESTING": True, "SECRET_KEY": "wheel"})
    client = app.test_client()
    page = client.get("/warranty", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200, page.status_code
    assert "保修" in page.get_data(as_text=True)
    css = client.get("/static/css/app.css")
    assert css.status_code == 200 and b"scan-row" in css.data
    print("rendered from", os.path.dirname(rma.__file__))
""")


@pytest.mark.slow
def test_installed_wheel_renders_pages(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(dist), str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "rma/templates/base.html" in names
    assert "rma/static/css/app.css" in names
    assert "rma/migrations/env.py" in names
    assert any(n.startswith("rma/translations/") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--quiet", str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig;"
                              "print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMA_")}
    env["RMA_INSTANCE_PATH"] = str(work / "instance")
    rendered = subprocess.run([str(python), "-c", SCRIPT], cwd=work, env=env,
                              capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    assert str(env_dir) in rendered.stdout

    migrated = subprocess.run([str(env_dir / "bin" / "rma"), "init-db"], cwd=work, env=env,
                              capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    assert "latest schema" in migrated.stdout
    helped = subprocess.run([str(env_dir / "bin" / "rma"), "--help"], cwd=work, env=env,
                            capture_output=True, text=True)
    assert "import-units" in helped.stdout
