"""`tunehouse run` shows its own progress: the live panel under a pseudo-terminal, nothing with
--quiet, plain lines on stderr off a terminal (--json stays parseable), Ctrl-C still works.

Real CLI subprocesses, each starting its own embedded Ray.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.cli import ANSI, CURSOR_UP, ERASE, Terminal, after_panel, cli_argv, cli_env, paced_spec

PLAIN_LINE = re.compile(r"^\[[^]]+\] (\d+)/(\d+) finished: \d+ done, \d+ running, \d+ failed", re.M)

#: Six quick trials, some failing (x > 5), two at once: failures are said while the panel is up.
FAILING_SPEC = """
name: live
seed: 1
task: classification
data: {sklearn: iris}
model: helpers.objectives:fails_when_big
evaluation: {holdout: 0.25}
metrics: [{name: loss, mode: min}]
search: {algorithm: random, num_samples: 6, max_concurrent: 2}
space: {x: {type: uniform, low: 0, high: 8}}
"""

def _on_terminal(*args: str, cwd: Path, interrupt_when: str | None = None, timeout: float = 240) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal (120x40) as stdin, stdout and stderr, to its end.

    With ``interrupt_when``, SIGINT (Ctrl-C) is sent once that regex matches what it drew.
    Returns the exit code and everything drawn.
    """
    deadline = time.monotonic() + timeout
    with Terminal(*args, cwd=cwd) as term:
        if interrupt_when is not None:
            while not re.search(interrupt_when, ANSI.sub("", term.text())):
                assert term.proc.poll() is None, term.text()[-3000:]
                assert time.monotonic() < deadline, "never drew " + interrupt_when
                time.sleep(0.05)
            term.proc.send_signal(signal.SIGINT)
        return term.wait(timeout=max(1.0, deadline - time.monotonic()))


@pytest.mark.slow
def test_run_on_a_terminal_draws_the_live_panel_and_leaves_the_summary(tmp_path):
    (tmp_path / "live.yaml").write_text(FAILING_SPEC)
    code, text = _on_terminal("run", "live.yaml", "--catalog", str(tmp_path / "cat"), cwd=tmp_path)
    assert code == 0, text[-3000:]
    assert ERASE in text and CURSOR_UP.search(text)  # erase line, cursor up: redrawn in place
    assert text.count(ERASE) > 8  # more than one frame of a panel of 5 lines or more
    frames = ANSI.sub("", text)
    assert re.search(r"0/6 finished", frames) and "running" in frames and "ETA" in frames
    summary = after_panel(text)
    assert summary.count("6/6 finished") == 1 and "completed" in summary and "ETA" not in summary
    done, failed = map(int, re.search(r"(\d+) done, 0 running, (\d+) failed", summary).groups())
    assert done + failed == 6 and done >= 1 and failed >= 1  # seed 1 draws x on both sides of 5
    assert re.search(r"best +loss \d", summary) and "last failure" in summary and "x too big" in summary
    # each failed trial's line was printed above the panel, whole, not torn by a redraw
    plain = [ln.strip() for ln in frames.replace("\r", "\n").splitlines()]
    said = [ln for ln in plain if re.fullmatch(r"trial \S+ failed: ValueError: x too big: [\d.]+", ln)]
    assert len(said) == failed
    # the result follows the summary (stdout, the same terminal)
    assert re.search(r"experiment live-\S+: 6 trials \(\d failed\) in [\d.]+s, random search, min loss", summary)
    assert "\x1b[?25h" in text  # the panel was closed: the cursor is shown again


@pytest.mark.slow
def test_quiet_run_on_a_terminal_shows_no_progress(tmp_path):
    (tmp_path / "paced.yaml").write_text(paced_spec("paced", 4))
    code, text = _on_terminal("run", "paced.yaml", "--catalog", str(tmp_path / "cat"), "--quiet", cwd=tmp_path)
    assert code == 0, text[-3000:]
    assert "experiment paced-" in text and "4 trials (0 failed)" in text  # the result only
    assert "finished" not in text and "ETA" not in text and "╭" not in text and "waiting" not in text
    assert ERASE not in text and not CURSOR_UP.search(text)


@pytest.mark.slow
def test_json_off_a_terminal_keeps_stdout_parseable_with_plain_progress_on_stderr(tmp_path):
    (tmp_path / "paced.yaml").write_text(paced_spec("paced", 6))
    proc = subprocess.run(cli_argv("run", "paced.yaml", "--catalog", str(tmp_path / "cat"), "--json"),
                          capture_output=True, text=True, timeout=240, cwd=tmp_path, env=cli_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert len(result["trials"]) == 6
    lines = [m.group(0) for m in PLAIN_LINE.finditer(proc.stderr)]
    counts = [(int(a), int(b)) for a, b in PLAIN_LINE.findall(proc.stderr)]
    assert lines and all(total == 6 for _, total in counts)
    assert [n for n, _ in counts] == sorted(n for n, _ in counts) and counts[-1][0] == 6
    final = proc.stderr.splitlines()[[i for i, ln in enumerate(proc.stderr.splitlines()) if PLAIN_LINE.match(ln)][-1]]
    assert final.endswith("; completed") and f"(trial {result['best']['trial_id']}: x=" in final
    assert "\x1b[" not in proc.stderr  # no terminal codes in a log


@pytest.mark.slow
def test_ctrl_c_closes_the_panel_with_an_interrupted_summary_and_resume_counts_the_earlier_trials(tmp_path):
    (tmp_path / "paced.yaml").write_text(paced_spec("paced", 20))
    cat = str(tmp_path / "cat")
    code, text = _on_terminal("run", "paced.yaml", "--catalog", cat, "--experiment-id", "paced-ctrl-c", cwd=tmp_path,
                              interrupt_when=r"[1-9]\d* done")
    assert code == 130, text[-3000:]
    summary = after_panel(text)
    assert "interrupted" in summary and "ETA" not in summary and "/20 finished" in summary
    done = int(re.search(r"(\d+) done, 0 running", summary).group(1))  # running trials closed as interrupted
    assert done >= 1
    # the summary comes first, then the CLI's one line with the resume hint
    assert summary.index("/20 finished") < summary.index("interrupted: the catalog holds every trial finished so far")
    assert "tunehouse resume paced-ctrl-c" in summary and "Traceback" not in text
    assert "\x1b[?25h" in text  # the panel was closed: the cursor is back

    proc = subprocess.run(cli_argv("resume", "paced-ctrl-c", "--catalog", cat, "--json"), capture_output=True, text=True,
                          timeout=240, cwd=tmp_path, env=cli_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(json.loads(proc.stdout)["trials"]) == 20
    lines = [ln for ln in proc.stderr.splitlines() if PLAIN_LINE.match(ln)]
    assert lines[0].split("] ", 1)[1].startswith(f"{done}/20 finished: {done} done, 0 running")  # the earlier ones
    assert "20/20 finished: 20 done" in lines[-1] and lines[-1].endswith("; completed")
