"""Historical import throughput against the guide's own approach, and memory while streaming 1M lines.

Both run against the same loopback sink (``benchmarks/sink.py``), which verifies every
signature. The baseline is the guide's Python sample as written: for each record
``json.dumps``, an HMAC, and ``requests.post`` without a session (a new connection
per record). It is timed on a 2,000-record sample in the same run and extrapolated
to 100,000. The figure is ``flask datacue import``'s engine (:class:`Importer`)
streaming a 100,000-line JSON Lines file. Goal: at least 20 times the baseline's
records per second.

Peak memory: a child process streams a generated 1,000,000-line file through the
importer into the sink and reports its own peak RSS (``VmHWM``). Goal: under
150 MB, whatever the file's size.

Run alone with ``python -m benchmarks bench_import``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.report import Result

SAMPLE = 2_000
RECORDS = 100_000
STREAMED = 1_000_000
SPEEDUP_GOAL = 20.0
RSS_GOAL_MB = 150.0

# A realistic product: every required field, a few optional ones (about 330 bytes a line).
_LINE = (
    '{{"product_id":"p{n}","variant_id":"v{v}","categories":["jeans","summer","men"],'
    '"name":"Blue Regular Fit Jeans {n}","brand":"Zayra","description":"Very fashionable jeans",'
    '"color":"blue","size":"M","price":99.5,"full_price":120,"available":true,"stock":{s},'
    '"rating":90,"photo_url":"https://shop.example/images/p{n}.jpg","link":"/products/p{n}"}}\n'
)


def write_products(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, count, 10_000):
            out.write(
                "".join(
                    _LINE.format(n=n, v=n % 3, s=n % 50) for n in range(start, min(count, start + 10_000))
                )
            )
    return path


def guide_approach(api_url: str, api_key: str, api_secret: str, records: list[dict[str, object]]) -> float:
    """The guide's sample, record by record; returns the seconds it took."""
    started = time.perf_counter()
    for data in records:
        json_data = json.dumps(data)
        checksum = hmac.new(bytes(api_secret, "utf-8"), bytes(json_data, "utf-8"), hashlib.sha256)
        response = requests.post(f"{api_url}/products", data=json_data, auth=(api_key, checksum.hexdigest()))
        response.raise_for_status()
    return time.perf_counter() - started


def import_file(api_url: str, api_key: str, api_secret: str, path: Path) -> tuple[float, int]:
    """Stream ``path`` through the importer; returns (seconds, records sent)."""
    from cue_front.client import Client
    from cue_front.importer import FileSource, Importer

    with Client(api_key, api_secret, api_url) as client:
        started = time.perf_counter()
        summary = Importer(client, "products", concurrency=4).run(FileSource(path, "products"))
        seconds = time.perf_counter() - started
    if not summary.ok:
        raise RuntimeError(summary.line())
    return seconds, summary.sent


def _peak_rss_kib() -> int:
    """This process's own peak RSS. Linux's ru_maxrss would also count the memory of the
    parent the child was forked from (it survives exec), so the high-water mark of the
    current address space (VmHWM) is read instead where /proc has it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _child(api_url: str, api_key: str, api_secret: str, path: str) -> None:
    seconds, sent = import_file(api_url, api_key, api_secret, Path(path))
    peak_kib = _peak_rss_kib()
    print(json.dumps({"seconds": seconds, "sent": sent, "peak_rss_kib": peak_kib}))


def run() -> list[Result]:
    from benchmarks.sink import API_KEY, API_SECRET, Sink

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        small = write_products(Path(folder) / "products-100k.jsonl", RECORDS)
        with Sink(keep_bodies=False, count_key=b'"product_id":') as sink:
            with small.open() as lines:
                sample = [json.loads(next(lines)) for _ in range(SAMPLE)]
            guide_seconds = guide_approach(sink.url, API_KEY, API_SECRET, sample) * RECORDS / SAMPLE
            before = sink.items_received
            import_seconds, sent = import_file(sink.url, API_KEY, API_SECRET, small)
            arrived = sink.items_received - before
            rejected = sum(1 for r in sink.requests if not r.signature_ok)
        guide_rate = RECORDS / guide_seconds
        import_rate = sent / import_seconds
        print(
            f"  guide's approach: {guide_rate:,.0f} records/s (100k extrapolated: {guide_seconds:,.1f}s); "
            f"importer: {import_rate:,.0f} records/s ({import_seconds:.1f}s, {arrived:,} arrived, "
            f"{rejected} bad signatures)",
            file=sys.stderr,
        )
        results.append(
            Result(
                measure="import 100k products",
                baseline=guide_rate,
                figure=import_rate,
                unit="records/s",
                goal=f">= {SPEEDUP_GOAL:.0f}x the guide's one request per record",
                passed=import_rate >= SPEEDUP_GOAL * guide_rate and arrived == RECORDS and not rejected,
            )
        )

        big = write_products(Path(folder) / "products-1m.jsonl", STREAMED)
        os.remove(small)
        with Sink(keep_bodies=False, count_key=b'"product_id":') as sink:
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_import",
                    "--child",
                    sink.url,
                    API_KEY,
                    API_SECRET,
                    str(big),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            arrived = sink.items_received
        if child.returncode != 0:
            raise RuntimeError(f"the streaming import failed:\n{child.stderr}")
        report = json.loads(child.stdout.strip().splitlines()[-1])
        peak_mb = report["peak_rss_kib"] / 1024
        print(
            f"  1M-line file ({big.stat().st_size / 2**20:,.0f} MiB): peak RSS {peak_mb:.1f} MB, "
            f"{report['sent'] / report['seconds']:,.0f} records/s, {arrived:,} arrived",
            file=sys.stderr,
        )
        results.append(
            Result(
                measure="peak RSS streaming a 1M-line JSONL import",
                baseline=None,
                figure=peak_mb,
                unit="MB",
                goal=f"< {RSS_GOAL_MB:.0f} MB",
                passed=peak_mb < RSS_GOAL_MB and arrived == STREAMED,
            )
        )
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(*sys.argv[2:6])
    else:
        from benchmarks.report import format_table

        print(format_table(run()))
