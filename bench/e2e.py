"""End to end through a running stack: upload every dev page through the API, poll each job to its
end, score the lines the platform stored.

    make run                          # another shell: prints the URL and a token (user demo)
    python -m bench.e2e --url http://127.0.0.1:8000 --token TOKEN [--pages ../shared/data/dev/pages/pages.json] \\
        [--limit N] [--all-at-once]

Each page is uploaded with ``POST /api/v1/pages/`` (multipart ``files``, ``force=true`` so that a
page uploaded by an earlier run gets a new job instead of the old one), its job polled every
0.25 s (``GET /api/v1/jobs/{id}/``) until ``succeeded`` (or failed/canceled), then its lines read
from ``GET /api/v1/pages/{id}/``. By default pages go one at a time, so "seconds per page" is the
latency of one page on an idle stack (upload → ``succeeded`` as seen by the client, 0.25 s
resolution); ``--all-at-once`` uploads them all first and measures the same for each, queueing
included.

Scores per source (issue 2, "Done when"; the protocol of ``bench.pages`` and ``ml.detect.metrics``):
line detection precision / recall / F1 at IoU ≥ 0.5 on the bounding boxes of the line polygons,
greedy one-to-one, typed Stanford lines and predictions mostly outside the ground-truth area not
scored; page CER of the scored lines sorted top to bottom and joined with spaces. Also the job's own
timings (queued, run, pipeline detect / recognize). Writes ``bench/out/e2e.json``.

Line coordinates come back in the stored page's pixels; when the platform's normalised page has
another size than the image file (it should not), they are scaled to the file's pixels.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAGES = ROOT.parent / "shared" / "data" / "dev" / "pages" / "pages.json"
OUT_DIR = ROOT / "bench" / "out"
FINAL = {"succeeded", "failed", "canceled"}


def _run_stack():
    """``scripts/run_stack.py`` as a module (its HTTP, multipart and stack helpers are reused)."""
    spec = importlib.util.spec_from_file_location("quire_run_stack", ROOT / "scripts" / "run_stack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rs = _run_stack()


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body: each ``(filename, bytes)`` under ``files``, plus text ``fields``."""
    import mimetypes
    import uuid

    boundary = uuid.uuid4().hex
    body = b""
    for name, value in (fields or {}).items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for filename, data in files:
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
                 f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(method: str, url: str, token: str, body: bytes | None = None, content_type: str | None = None,
            timeout: float = 300, retries: int = 20):
    """``run_stack.http`` that waits out HTTP 429 (``Retry-After``) and 503 answers, up to ``retries`` times."""
    for _ in range(retries):
        status, data, headers = rs.http(method, url, token, body, content_type, timeout=timeout)
        if status not in (429, 503):
            return status, data, headers
        time.sleep(min(30.0, float(headers.get("Retry-After") or 1)))
    return status, data, headers


def upload(base: str, token: str, path: Path, force: bool = True) -> tuple[dict, float, float]:
    """Upload one page file; returns (the job entry of the 202 answer, start time, seconds taken).

    Raises RuntimeError with the answer when it is not 202 or names no job."""
    body, ctype = multipart([(path.name, path.read_bytes())], {"force": "true"} if force else None)
    t0 = time.monotonic()
    status, answer, _ = request("POST", f"{base}/api/v1/pages/", token, body, ctype)
    took = time.monotonic() - t0
    jobs = rs.find_jobs(answer)
    if status != 202 or not jobs:
        raise RuntimeError(f"upload of {path.name} answered HTTP {status}: {answer}")
    return jobs[0], t0, took


def follow(base: str, token: str, job: dict, timeout: float, interval: float = 0.25) -> tuple[dict, float]:
    """Poll a job until it is final; returns (the job, monotonic time it was first seen final)."""
    url = job["url"] if job["url"].startswith("http") else base + job["url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, data, _ = request("GET", url, token)
        if status != 200:
            raise RuntimeError(f"GET {url} answered HTTP {status}: {data}")
        if data.get("state") in FINAL:
            return data, time.monotonic()
        time.sleep(interval)
    raise RuntimeError(f"job {job.get('id')} not final after {timeout:.0f} s")


def page_lines(base: str, token: str, page_id: int) -> dict:
    status, data, _ = request("GET", f"{base}/api/v1/pages/{page_id}/", token)
    if status != 200:
        raise RuntimeError(f"GET page {page_id} answered HTTP {status}: {data}")
    return data


def score_api_page(page: dict, gt_page: dict) -> dict:
    """Score the lines of a ``GET /api/v1/pages/{id}/`` answer against a ground-truth page of
    ``ml.detect.pages.read_pages_index``; returns ``bench.pages.score_page``'s dict plus ``pred``
    (the ``(polygon, text)`` pairs, in the image file's pixels)."""
    from bench.pages import score_page
    from bench.transcribe_pages import read_gray

    h, w = read_gray(gt_page["image"]).shape
    sx, sy = w / max(1, page["width"]), h / max(1, page["height"])
    pred = [([[x * sx, y * sy] for x, y in ln["polygon"]], ln["text"]) for ln in page.get("lines", [])]
    return dict(score_page(pred, gt_page["lines"]), pred=pred)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("QUIRE_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--token", default=os.environ.get("QUIRE_TOKEN"), help="API token (or QUIRE_TOKEN)")
    ap.add_argument("--pages", default=str(DEFAULT_PAGES))
    ap.add_argument("--limit", type=int, default=None, help="only N pages, round-robin over sources")
    ap.add_argument("--all-at-once", action="store_true", help="upload every page first, then follow them")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for one job")
    ap.add_argument("--out", default=str(OUT_DIR / "e2e.json"))
    args = ap.parse_args(argv)
    if not args.token:
        raise SystemExit("--token (or QUIRE_TOKEN) is required: `make run` prints one")
    base = args.url.rstrip("/")
    sys.path.insert(0, str(ROOT))

    from bench.pages import pick_pages, require_pages_index
    from ml.detect.metrics import prf
    from ml.detect.pages import read_pages_index
    from ml.metrics import ErrorRate

    pages = pick_pages(read_pages_index(require_pages_index(args.pages)), args.limit)
    print(f"{len(pages)} pages → {base}", file=sys.stderr)

    def one(p: dict, job: dict | None = None, t0: float | None = None, took: float | None = None) -> dict:
        if job is None:
            job, t0, took = upload(base, token=args.token, path=Path(p["image"]))
        final, t_end = follow(base, args.token, job, args.timeout)
        return {"page": p, "job": final, "upload_s": took, "seconds": t_end - t0}

    if args.all_at_once:
        with ThreadPoolExecutor(max_workers=len(pages)) as ex:
            uploaded = list(ex.map(lambda p: upload(base, args.token, Path(p["image"])), pages))
        with ThreadPoolExecutor(max_workers=min(16, len(pages))) as ex:
            done = list(ex.map(lambda pu: one(pu[0], *pu[1]), zip(pages, uploaded)))
    else:
        done = [one(p) for p in pages]

    counts: dict[str, list[int]] = {}
    cer: dict[str, ErrorRate] = {}
    secs: dict[str, list[float]] = {}
    rows = []
    for d in done:
        p, job = d["page"], d["job"]
        src = p["source"]
        row = {"image": p["image"], "source": src, "job": job.get("id"), "state": job.get("state"),
               "seconds": round(d["seconds"], 2), "upload_s": round(d["upload_s"], 3),
               "timings": job.get("timings"), "error": job.get("error")}
        if job.get("state") == "succeeded":
            s = score_api_page(page_lines(base, args.token, job["page"]), p)
            pred = s["pred"]
            agg = counts.setdefault(src, [0, 0, 0])
            for i, k in enumerate(("tp", "fp", "fn")):
                agg[i] += s[k]
            cer.setdefault(src, ErrorRate()).update(s["reference"], s["prediction"])
            secs.setdefault(src, []).append(d["seconds"])
            row.update(lines=len(pred), tp=s["tp"], fp=s["fp"], fn=s["fn"], prediction=s["prediction"])
        rows.append(row)
        print(f"{src:22s} {row['state']:9s} {row['seconds']:6.1f} s  {Path(p['image']).name}", file=sys.stderr)

    sources = {}
    for src in sorted(counts):
        r = prf(*counts[src])
        sources[src] = {"precision": round(r["precision"], 3), "recall": round(r["recall"], 3),
                        "f1": round(r["f1"], 3), "page_cer": round(cer[src].cer, 4),
                        "pages": len(secs[src]), "seconds_per_page": round(sum(secs[src]) / len(secs[src]), 2)}
    failed = [r for r in rows if r["state"] != "succeeded"]
    print("| source | pages | detection P / R (IoU ≥ 0.5) | page CER | s per page (upload → succeeded) |")
    print("|---|---|---|---|---|")
    for src, v in sources.items():
        print(f"| {src} | {v['pages']} | {v['precision']:.2f} / {v['recall']:.2f} | {100 * v['page_cer']:.1f} % | "
              f"{v['seconds_per_page']:.1f} |")
    if failed:
        print(f"\n{len(failed)} job(s) did not succeed: " +
              "; ".join(f"{Path(r['image']).name}: {r['state']} {r['error']}" for r in failed))
    models = next((r["job"].get("models_used") for r in done if r["job"].get("models_used")), None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": {"url": base, "pages": len(pages), "all_at_once": args.all_at_once,
                                        "models": models, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                        "load_average": [round(x, 2) for x in os.getloadavg()]},
                               "sources": sources, "pages": rows}, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
