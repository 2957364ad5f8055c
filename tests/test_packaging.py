"""The wheel ships everything the blueprint needs: built, installed into a fresh venv, used there."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USE_THE_WHEEL = textwrap.dedent(
    """
    import json
    import cue_front
    from flask import Flask
    from cue_front import DataCue, datacue_products, render_datacue

    app = Flask("shop")
    app.config.update(DATACUE_API_KEY="k", TESTING=True)
    DataCue(app)
    with app.test_request_context():
        widget = str(datacue_products("related"))
        config = str(render_datacue("home"))
    loader = app.test_client().get("/datacue/static/cue-front-loader.js")
    from importlib import metadata
    plugins = [e.value for e in metadata.entry_points(group="pytest11") if e.name == "cue_front"]
    print(json.dumps({
        "version": [cue_front.__version__, metadata.version("cue-front")],
        "plugins": plugins,
        "licence": [str(f) for f in metadata.files("cue-front") if "LICENSE" in str(f)],
        "requires": metadata.requires("cue-front"),
        "urls": metadata.metadata("cue-front").get_all("Project-URL"),
        "module": cue_front.__file__,
        "widget": widget,
        "config": config,
        "loader": loader.status_code,
        "typed": (__import__("pathlib").Path(cue_front.__file__).parent / "py.typed").exists(),
    }))
    """
)


def test_wheel_installs_and_renders_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, ROOT],
        check=True,
    )
    (wheel,) = dist.glob("cue_front-*.whl")

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel], check=True
    )
    # The dependencies (flask...) come from the test venv, but cue_front only from the wheel:
    # a path listed in a .pth is not a site dir, so the editable install's own .pth stays inert.
    fresh_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(fresh_site) / "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    run = subprocess.run(
        [python, "-c", USE_THE_WHEEL], cwd=tmp_path, check=True, capture_output=True, text=True
    )
    used = json.loads(run.stdout)
    assert used["module"].startswith(str(fresh))
    assert used["widget"] == '<div data-dc-products="related"></div>'
    assert "window.datacueConfig" in used["config"]
    assert used["loader"] == 200
    assert used["typed"] is True
    # One version source, the pytest plugin found by itself, the licence shipped, what is imported declared.
    assert used["version"][0] == used["version"][1]
    assert used["plugins"] == ["cue_front.testing"]
    assert len(used["licence"]) == 1
    declared = {requirement.split(">")[0].split(";")[0].strip() for requirement in used["requires"]}
    assert {"flask", "blinker", "click", "markupsafe", "itsdangerous", "requests"} <= declared
    assert used["urls"]
