"""The console's wheel (what the image installs: deploy/docker/Dockerfile) holds every file the
console reads at run time besides its code: templates (in sub-folders too), static files, the
words of every language and the migrations. The image has no source tree, so a file left out
is a page that fails only once deployed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CONSOLE = ROOT / "services" / "console"


def test_the_console_wheel_holds_its_templates_static_files_words_and_migrations(
    tmp_path: Path,
) -> None:
    source = tmp_path / "console"
    shutil.copytree(
        CONSOLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    # A screen's templates and scripts in a folder of its own, as the screens are written.
    for nested in ("templates/area/screen.html", "static/area/screen.js"):
        (source / "console" / nested).parent.mkdir(parents=True, exist_ok=True)
        (source / "console" / nested).write_text("x")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(  # noqa: S603 - this interpreter's pip on a copy of our package
        [*pip, str(source), "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())

    package = source / "console"
    needed = {
        str(path.relative_to(source))
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc")
    }
    assert {"console/i18n/common.json", "console/templates/area/screen.html"} <= needed
    assert "console/static/area/screen.js" in needed
    assert needed <= packed, sorted(needed - packed)
