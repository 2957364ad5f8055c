"""Every Python sample of DataCue's guide that makes a request, run against the emulator in the guide's order.

The samples are read from the guide at test time (``../shared/datacue-api.md`` beside the repository,
or ``$CUE_FRONT_GUIDE``), not copied here. Each is run as written but for a short list of textual fixes
of the guide's obvious typos, its hosts pointed at the emulator on loopback and its placeholder key and
secret replaced by the emulator's. After each, the status the guide documents for its section is
checked, and the request the emulator journaled, with its warnings: the samples that break the guide's
own tables are taken with a warning, not refused.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cue_front.emulator import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent
GUIDE = Path(os.environ.get("CUE_FRONT_GUIDE", ROOT.parent / "shared" / "datacue-api.md"))

#: The guide's obvious typos, by sample title: (as written, as meant). Each must match exactly once,
#: so that a fix the guide no longer needs fails here instead of lingering.
TYPO_FIXES: dict[str, list[tuple[str, str]]] = {
    # Its own Endpoint line, and every other category URL, say /v1/categories/.
    "Update Category": [("/v1/category/{categoryId}", "/v1/categories/{categoryId}")],
    # The last line's parenthesis is never closed.
    "Change Order Status": [("checksum.hexdigest())\n", "checksum.hexdigest()))\n")],
    # The second order's object is never closed before the list is.
    "Create Orders": [('23:29:04Z",\n    ]\n}', '23:29:04Z",\n    }\n    ]\n}')],
    # Commas missing between members.
    "Create/Update Users": [(f'"user_id": "{user}"\n', f'"user_id": "{user}",\n') for user in ("u1", "u2")],
}

#: Sections with no documented status. The Authentication sample only illustrates signing: its user
#: has no user_id (and a "name" no table lists), which stays a refusal.
UNDOCUMENTED_STATUS: dict[str, int] = {"Authentication": 400}
#: The errors of the samples refused (every other one has none).
ERRORS: dict[str, list[str]] = {
    "Authentication": ["name: unknown field; did you mean 'last_name'?", "user_id: required field missing"],
}

#: What a sample presumes DataCue holds, made before it runs: the Change Order Status sample changes
#: order o1 ("replace this value with the order id you want to cancel"), which no earlier sample creates.
PRECONDITIONS: dict[str, tuple[str, str, Any]] = {
    "Change Order Status": ("POST", "/orders", {"order_id": "o1", "user_id": "u1"}),
}

#: The samples that break the guide's own tables, and the warnings the emulator journals for them.
WARNINGS: dict[str, list[str]] = {
    "Update User": ["user_id: the guide's table leaves it out of an update"],
    "Create/Update Users": [f"batch[{n}].first_name: the guide's table says required" for n in (0, 1)],
}

HOSTS = ("https://api.datacue.co", "https://events.datacue.co")
KEY, SECRET = '"your-api-key-goes-here"', '"your-api-secret-goes-here"'
_STATUS = re.compile(r"> The above command returns a (\d{3}) ")
_HEADING = re.compile(r"(#+) (.+)")


@dataclass
class Sample:
    """One Python code block: the heading it stands under, and the statuses its section documents."""

    title: str
    code: str
    statuses: list[int] = field(default_factory=list)

    @property
    def only_strings(self) -> bool:
        """The events samples say "browser only event" in a string and do nothing else."""
        try:
            return isinstance(ast.literal_eval(self.code.strip()), str)
        except (ValueError, SyntaxError):  # code, or code with a typo
            return False


def guide_samples(text: str) -> Iterator[Sample]:
    """The Python blocks of the guide in order. A status line belongs to the block's section, the part
    under a ``#`` or ``##`` heading (in Create Orders it follows the ``###`` field table)."""
    section: list[Sample] = []
    title = ""
    lines = iter(text.splitlines())
    for line in lines:
        heading = _HEADING.fullmatch(line)
        if heading:
            title = heading.group(2).strip()
            if len(heading.group(1)) <= 2:
                yield from section
                section = []
        elif line.startswith("```"):
            block = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                block.append(inner)
            if line == "```python":
                section.append(Sample(title, "\n".join(block) + "\n"))
        elif status := _STATUS.match(line):
            for sample in section:
                sample.statuses.append(int(status.group(1)))
    yield from section


def runnable(sample: Sample, emulator: RunningEmulator) -> str:
    """The sample's code with its typos fixed, and pointed at the emulator (nothing else may be named)."""
    code = sample.code
    for written, meant in TYPO_FIXES.get(sample.title, []):
        assert code.count(written) == 1, f"{sample.title}: the fix of {written!r} no longer applies"
        code = code.replace(written, meant)
    assert KEY in code and SECRET in code, f"{sample.title}: no placeholder credentials to replace"
    code = code.replace(KEY, repr(emulator.api_key)).replace(SECRET, repr(emulator.api_secret))
    for host in HOSTS:
        code = code.replace(host, emulator.url)
    # Every request goes to `url`, which names the emulator on loopback.
    assert set(re.findall(r"requests\.\w+\((\w+)", code)) == {"url"}, f"{sample.title}: another target"
    targets = re.findall(r"^url = f?\"([^\"]*)\"$", code, re.MULTILINE)
    assert targets and all(target.startswith(emulator.url + "/v1/") for target in targets), targets
    assert emulator.url.startswith("http://127.0.0.1:") and "datacue.co" not in code
    return code


def documented_status(sample: Sample) -> int:
    if sample.title in UNDOCUMENTED_STATUS:
        assert sample.statuses == [], f"{sample.title} has a documented status now: {sample.statuses}"
        return UNDOCUMENTED_STATUS[sample.title]
    (status,) = set(sample.statuses)  # exactly one, however often it is said
    return status


@pytest.fixture
def guide() -> str:
    if not GUIDE.is_file():
        # The guide is DataCue's document, kept beside the repository (shared/), not in it.
        pytest.skip(f"DataCue's guide is not at {GUIDE} (set CUE_FRONT_GUIDE to its path)")
    return GUIDE.read_text("utf-8")


def test_every_python_sample_of_the_guide_gets_its_documented_status(
    guide: str, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No proxy: the samples' requests go straight to the emulator on loopback.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    samples = list(guide_samples(guide))
    requesting = [sample for sample in samples if not sample.only_strings]
    assert all("requests." in sample.code for sample in requesting)  # nothing else to run
    named = set(TYPO_FIXES) | set(UNDOCUMENTED_STATUS) | set(ERRORS) | set(PRECONDITIONS) | set(WARNINGS)
    assert named <= {sample.title for sample in requesting}

    # (title, status, errors, warnings): as each sample got them, and as the guide says.
    got, documented = [], []
    for sample in requesting:
        if sample.title in PRECONDITIONS:
            method, path, body = PRECONDITIONS[sample.title]
            assert emulator.rest(method, path, body).status_code < 300
        journaled_before = len(emulator.requests())
        namespace: dict[str, Any] = {"__name__": "guide_sample"}
        exec(compile(runnable(sample, emulator), f"<guide: {sample.title}>", "exec"), namespace)
        status = namespace["response"].status_code
        journal = emulator.requests()
        assert len(journal) == journaled_before + 1, f"{sample.title}: not one request to the emulator"
        assert journal[0]["status"] == status
        title = sample.title
        got.append((title, status, journal[0]["errors"], journal[0]["warnings"]))
        documented.append((title, documented_status(sample), ERRORS.get(title, []), WARNINGS.get(title, [])))

    assert got == documented
    assert (len(requesting), len(samples) - len(requesting)) == (30, 11)  # as the guide stands
