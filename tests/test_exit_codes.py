"""The exit codes of every command: 0 done, 1 other failure, 2 bad input, 3 stopped but resumable."""

import subprocess
import sys
import textwrap

from conftest import one_line_error, run_cli
from socialsim.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, EXIT_RESUMABLE
from socialsim.simulate.engine import Live, RunResult


def _app_code(body: str) -> str:
    """A socialsim-style app whose one command runs `body` (one line), through the shared `run_app`."""
    return textwrap.dedent(
        f"""
        from socialsim.cli.app import OneLineTyper, run_app
        from socialsim.errors import Stopped, UserError
        app = OneLineTyper()
        @app.command()
        def go() -> None:
            {body}
        @app.command()
        def other() -> None:
            pass
        run_app(app)
        """
    )


def _app(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _app_code(body), "go"], capture_output=True, text=True, timeout=60)


def test_codes_are_the_documented_ones():
    assert (EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_RESUMABLE) == (0, 1, 2, 3)


def test_each_outcome_maps_to_its_code():
    assert _app("pass").returncode == 0
    r = _app("raise UserError('x.jsonl:3: field a: bad')")
    assert r.returncode == 2 and r.stderr.startswith("error: x.jsonl:3")
    r = _app("raise Stopped('token budget 10 reached; continue with --resume out')")
    assert r.returncode == 3 and "stopped: token budget" in r.stderr and "Traceback" not in r.stderr
    r = _app("raise KeyboardInterrupt")
    assert r.returncode == 3 and "interrupted" in r.stderr
    r = _app("raise RuntimeError('disk on fire')")
    assert r.returncode == 1 and "failed: RuntimeError: disk on fire" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_option_is_2():
    one_line_error(run_cli("simulate", "--n", "0x", "--out", "x"), "--n")


def test_unfinished_runs_are_resumable():
    done = RunResult(None, Live(total=2), {}, 0.0, {}, {"dialogues_pending": 0})
    assert done.unfinished is None
    budget = RunResult(None, Live(total=2, stopped="token budget 5 reached"), {}, 0.0, {}, {"dialogues_pending": 1})
    assert budget.unfinished == "token budget 5 reached"
    deferred = RunResult(None, Live(total=3, deferred=1), {}, 0.0, {}, {"dialogues_pending": 1})
    assert "1 dialogues pending (1 deferred" in deferred.unfinished


def test_second_ctrl_c_while_leaving_stops_at_once_without_a_traceback():
    # as with an in-process model: Ctrl-C arrives while a call runs on a worker thread, which the
    # interpreter's exit then waits for; a second Ctrl-C during that wait ends the process
    import signal
    import time

    code = _app_code(
        "import time, concurrent.futures; "
        "concurrent.futures.ThreadPoolExecutor(1).submit(time.sleep, 30); raise KeyboardInterrupt"
    )
    p = subprocess.Popen([sys.executable, "-c", code, "go"], stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    first = p.stderr.readline()
    assert first.startswith("interrupted:")
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    rest = p.stderr.read()
    rc = p.wait(timeout=20)
    assert time.monotonic() - t0 < 10  # did not wait for the 30 s call
    assert rc == EXIT_RESUMABLE and "Traceback" not in rest and "stopping now" in rest
