"""`tunehouse watch`, `report` and `compare` through the real CLI in subprocesses.

watch follows a real `tunehouse run` in another process (plain lines off a terminal, the rich
display under a pseudo-terminal, Ctrl-C of the watcher alone); the report is loaded from a
file:// path by a real headless Chromium (Debian's, driven by Playwright).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.catalogs import THREE_PARAMS, fake, story_catalog, write
from helpers.cli import CURSOR_UP, ERASE, Terminal, after_panel, cli_argv, cli_env, paced_spec
from tunehouse.catalog import Catalog, CatalogError

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def tunehouse(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=cli_env())


def _popen(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(cli_argv(*args), cwd=cwd, env=cli_env(), **kw)


def _visible(cat: Path, exp_id: str) -> bool:
    try:
        Catalog(str(cat)).experiment(exp_id)
        return True
    except CatalogError:
        return False


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One real 20-trial run (0.3 s a trial, 2 at once), watched by three `tunehouse watch`
    processes started as soon as its experiment is in the catalog: plain (a pipe), Ctrl-C'd
    after its first line, and under a pseudo-terminal."""
    d = tmp_path_factory.mktemp("watched")
    (d / "watched.yaml").write_text(paced_spec("watched", 20))
    cat, exp_id = d / "catalog", "watched-e2e-0001"
    run = _popen("run", "watched.yaml", "--catalog", str(cat), "--experiment-id", exp_id, "--json", cwd=d,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _visible(cat, exp_id):
        assert run.poll() is None, run.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never recorded its experiment"
        time.sleep(0.1)
    watch = ("watch", exp_id, "--catalog", str(cat), "--interval", "0.3")
    plain = _popen(*watch, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = _popen(*watch, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Terminal(*watch, cwd=d) as tty:
        first = stopped.stdout.readline()
        status_at_sigint = Catalog(str(cat)).experiment(exp_id)["status"]
        stopped.send_signal(signal.SIGINT)  # the watcher alone, not the run
        s_out, s_err = stopped.communicate(timeout=60)
        p_out, p_err = plain.communicate(timeout=240)
        r_out, r_err = run.communicate(timeout=240)
        drawn = tty.wait(timeout=60)
    yield SimpleNamespace(
        cat=cat, exp_id=exp_id, run=(run.returncode, r_out, r_err), plain=(plain.returncode, p_out, p_err),
        stopped=(stopped.returncode, first + s_out, s_err), status_at_sigint=status_at_sigint,
        tty=drawn)


@pytest.mark.slow
def test_watch_follows_a_run_in_another_process_and_exits_0(watched):
    code, out, err = watched.plain
    assert code == 0, err[-2000:]
    lines = out.splitlines()
    finished = [int(re.match(r"\[[^]]+\] (\d+)/20 finished", ln).group(1)) for ln in lines]
    assert len(lines) >= 2 and finished == sorted(finished) and finished[0] < finished[-1] == 20
    assert lines[-1].endswith("; completed") and "best loss" in lines[-1]
    assert "ETA" in lines[0]  # a running search's line has an ETA
    run_code, run_out, run_err = watched.run
    assert run_code == 0, run_err[-2000:]
    assert len(json.loads(run_out)["trials"]) == 20


@pytest.mark.slow
def test_ctrl_c_of_the_watcher_alone_exits_130_and_the_run_goes_on(watched):
    code, out, err = watched.stopped
    assert watched.status_at_sigint == "running"  # the signal came mid-run
    assert code == 130 and "watch stopped (Ctrl-C); the search itself goes on" in err
    assert "Traceback" not in err and re.match(r"\[[^]]+\] \d+/20 finished", out)
    exp = Catalog(str(watched.cat)).experiment(watched.exp_id)
    assert watched.run[0] == 0 and exp["status"] == "completed" and exp["trials_done"] == 20


@pytest.mark.slow
def test_watch_on_a_terminal_redraws_in_place_and_leaves_a_clean_summary(watched):
    code, text = watched.tty
    assert code == 0, text[-2000:]
    assert ERASE in text and CURSOR_UP.search(text)  # erase line + cursor up: redrawn in place
    assert text.count(ERASE) > 4  # more than one frame was drawn
    summary = after_panel(text)  # what stays on screen after the live panel
    assert "20/20 finished" in summary and "completed" in summary and "best" in summary
    assert "ETA" not in summary and summary.count("20/20 finished") == 1


# -- report -------------------------------------------------------------------------------------
def _browser_check(page_path: Path, shot: Path) -> dict:
    """Load a file in headless Chromium; return console errors, requests, and the plot containers' state."""
    from playwright.sync_api import sync_playwright

    url = page_path.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            # anything but the file itself is refused, and still recorded above
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "[...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('svg.main-svg'))",
                timeout=60_000)
            state = page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')].map(d => ({
                id: d.id, svgs: d.querySelectorAll('svg.main-svg').length,
                drawn: d.querySelectorAll('svg.main-svg path, svg.main-svg text').length,
                width: d.getBoundingClientRect().width}))""")
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "requests": requests, "plots": state}


def _need_browser() -> None:
    missing = []
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium; .ci/run does it)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail("browser test cannot run: missing " + " and ".join(missing))
        pytest.skip("missing " + " and ".join(missing))


def test_report_in_a_real_browser_renders_offline_without_errors(tmp_path):
    _need_browser()
    cat = tmp_path / "catalog"
    story_catalog(str(cat))
    out = tmp_path / "story.html"
    proc = tunehouse("report", "story", "single", "--catalog", str(cat), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.fullmatch(rf"wrote {re.escape(str(out))} \(\d+\.\d MB\)\n", proc.stdout)
    shot = tmp_path / "artifacts" / "report.png"
    got = _browser_check(out, shot)
    print(f"\nreport screenshot: {shot}")
    assert got["errors"] == []
    assert got["requests"] == [out.resolve().as_uri()]  # no network request, not even a refused one
    plots = got["plots"]
    assert len(plots) == 13  # overlay; story: 8; single: 4 (see test_report.py)
    assert all(p["svgs"] >= 1 and p["drawn"] > 10 and p["width"] > 300 for p in plots), plots
    assert shot.stat().st_size > 50_000


def test_report_default_path_is_in_the_working_directory(tmp_path):
    cat = tmp_path / "catalog"
    write(str(cat), "tiny-exp", THREE_PARAMS.format(name="tiny", n=3), [fake(i, 0.5 + i / 10) for i in range(3)])
    proc = tunehouse("report", "tiny", "--catalog", str(cat), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wrote report-tiny-exp.html (") and (tmp_path / "report-tiny-exp.html").is_file()
    bad = tunehouse("report", "nosuch", "--catalog", str(cat), cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: no experiment 'nosuch'") and len(bad.stderr.splitlines()) == 1


# -- compare ------------------------------------------------------------------------------------
def test_compare_json_same_and_different_data(tmp_path):
    cat = str(tmp_path / "catalog")
    spec = THREE_PARAMS.format(name="cmp", n=2)
    write(cat, "base", spec, [fake(0, 0.90, std=0.02), fake(1, 0.80, std=0.02)])
    write(cat, "same", spec, [fake(0, 0.905, std=0.01)])  # same data, +0.005 within 0.02
    write(cat, "other", spec, [fake(0, 0.99, std=0.01)], fingerprint="fp-other")  # other data, +0.09
    same = tunehouse("compare", "base", "same", "--catalog", cat, "--json")
    assert same.returncode == 0, same.stderr
    a, b = json.loads(same.stdout)
    assert (a["experiment_id"], b["experiment_id"]) == ("base", "same")
    assert b["same_data"] is True and b["within_noise"] is True and b["delta"] == pytest.approx(0.005)
    assert (a["best_std"], a["trials_done"], a["trials_total"]) == (0.02, 2, 2)
    other = tunehouse("compare", "base", "other", "--catalog", cat, "--json")
    _, c = json.loads(other.stdout)
    assert c["same_data"] is False and c["within_noise"] is False and c["dataset_fingerprint"] == "fp-other"
    human = tunehouse("compare", "base", "same", "other", "--catalog", cat)
    assert human.returncode == 0
    assert "same vs base: accuracy delta +0.005, within fold noise (|delta| <= 0.02); same data" in human.stdout
    assert "other vs base: accuracy delta +0.09, beyond fold noise (|delta| > 0.02): better; DIFFERENT data" in human.stdout
    one = tunehouse("compare", "base", "--catalog", cat)
    assert one.returncode == 2 and one.stderr == "error: experiment: compare needs at least two experiments\n"


def test_new_commands_document_themselves():
    for cmd in ("watch", "report", "compare"):
        out = tunehouse(cmd, "--help")
        assert out.returncode == 0 and out.stdout.startswith(f"usage: tunehouse {cmd}")
        assert len(out.stdout.splitlines()) > 5 and "--catalog" in out.stdout
    top = tunehouse("--help").stdout
    assert all(c in top for c in ("watch", "report", "compare"))
    bad = tunehouse("watch", "x", "--interval", "0")
    assert bad.returncode == 2 and bad.stderr == "error: --interval: must be > 0 seconds (got 0.0)\n"
