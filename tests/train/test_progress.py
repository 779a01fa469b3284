"""Progress lines reach the user: formatting, and Ray's driver-side log deduplication."""

from __future__ import annotations

import ray  # noqa: F401  (the driver's deduplicators are created when Ray is imported)
from ray._private import ray_logging

from train.progress import format_duration, hide_state_api_warnings, keep_progress_lines_whole, progress_line


def step_line(step: int) -> str:
    return progress_line(
        step=step, total_steps=8, epoch=step / 8, loss=2.0 - step / 10, eval_loss=1.5, lr=1e-4, tokens_per_s=900, eta_s=65
    )


def worker_batch(pid: int, lines: list[str]) -> dict:
    """A batch of lines as Ray's log monitor hands it to the driver."""
    return {"ip": "10.0.0.1", "pid": pid, "job": "01000000", "is_err": False, "lines": lines, "actor_name": "RayTrainWorker"}


def printed(deduplicator, batches: list[dict]) -> list[str]:
    return [line for batch in batches for out in deduplicator.deduplicate(batch) for line in out["lines"]]


def test_progress_line_shows_step_loss_eval_rate_and_eta():
    line = step_line(3)
    assert line.startswith("[train] step 3/8 (epoch 0.38) | loss 1.7000 | eval 1.5000 | lr 1.00e-04")
    assert line.endswith("| 900 tok/s | ETA 1m05s")
    assert format_duration(3725) == "1h02m" and format_duration(-4) == "0s"


def test_progress_of_a_new_worker_process_is_not_folded_into_the_last_ones():
    """Two runs in one driver (the pipeline trains two adapters; Ray replaces a dead worker)."""
    deduplicator = ray_logging.stdout_deduplicator
    deduplicator.flush()
    # Without the fix Ray folds look-alike lines from a second process: the control shows it does.
    control = printed(deduplicator, [worker_batch(101, ["loading shard 1 of 4"]), worker_batch(202, ["loading shard 2 of 4"])])
    assert control == ["loading shard 1 of 4"]
    deduplicator.flush()

    keep_progress_lines_whole()
    keep_progress_lines_whole()  # idempotent: the pattern is added once
    first_run, second_run = [step_line(7), step_line(8)], [step_line(1), step_line(2)]
    assert printed(deduplicator, [worker_batch(101, first_run), worker_batch(202, second_run)]) == first_run + second_run
    assert deduplicator.allow_re.pattern.count("train") == 1
    deduplicator.flush()


def test_state_api_warnings_of_a_local_ray_without_dashboard_are_dropped():
    deduplicator = ray_logging.stderr_deduplicator
    deduplicator.flush()
    warning = "Failed to query Ray Train Controller actor state. State API may be temporarily unavailable. Continuing to monitor."
    hide_state_api_warnings()
    lines = [warning, "a real error", warning, step_line(1)]
    assert printed(deduplicator, [worker_batch(303, lines)]) == ["a real error", step_line(1)]
    deduplicator.flush()
