"""The loss-curve PNG saved next to every trained adapter."""

from __future__ import annotations

from pathlib import Path

LOSS_CURVE_FILE = "loss_curve.png"


def plot_loss_curve(history: list[dict], evals: list[dict], path: Path, title: str) -> Path:
    """Training loss per step (and its moving average) with eval-loss points, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    window = max(1, len(losses) // 20)
    ax.plot(steps, losses, color="tab:blue", alpha=0.35 if window > 1 else 1.0, linewidth=1, label="train loss (step)")
    if window > 1:
        smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))]
        ax.plot(steps, smooth, color="tab:blue", linewidth=2, label=f"train loss ({window}-step mean)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", color="tab:orange", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per assistant token")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
