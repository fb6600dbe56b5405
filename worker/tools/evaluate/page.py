"""The top of docs/accuracy.md: the command, the machine, every hyper-parameter, and the notes."""

from __future__ import annotations

from datetime import UTC, datetime

from models.device import resolve_device
from worker.config.parts import default_negatives
from worker.config.settings import Settings
from worker.tools.evaluate.data import DRIFT_AT, SYNTHETIC_ITEMS, SYNTHETIC_USERS
from worker.tools.evaluate.options import EvalOptions, engine_settings
from worker.tools.evaluate.protocol import K

NOTES = (
    "Reading the numbers:",
    "",
    (
        "- A user the method has not learned yet (e.g. one whose earlier events are all in the "
        "same batch) gets that method's cold-start list: recstream's is the one it publishes "
        "under `RECSTREAM_REDIS_COLD_START_KEY` (items by learned bias), the peers' is "
        "their popularity (ALS, ISGD and item-kNN fall back to most-popular)."
    ),
    (
        "- recstream excludes the last `RECSTREAM_SEEN_HISTORY` clicks of a user (its production "
        "rule); the peers exclude everything the user clicked."
    ),
    (
        "- re-consumed (hits): events re-clicking an item the user clicked before, left out of "
        "the headline; hits on them come from a repeat inside one batch (seen items are known "
        "from the batches before) and, for recstream, from clicks older than its seen history."
    ),
    (
        "- ALS is refitted on the same interval on every stream, the synthetic ones included "
        "(`make eval`: every 10,000 events). To keep `make eval` within about 20 minutes on 2 "
        "shared cores its synthetic streams are 200,000 events each, with 2,000 users and 2,000 "
        "items: 100 clicks per user on average, as in ml-100k (106)."
    ),
    (
        '- "Ahead of every peer for good": the first window from which recstream\'s windowed '
        f"HR@{K} is at or above every peer's in that window and all later ones (shaded in the "
        "plots)."
    ),
    (
        "- Long horizon: at each tenth of the stream every user seen so far gets a list, a hit "
        "when it names an item that user clicks later (new to them); a user-checkpoint pair "
        "counts once. The ± figures are one standard error of a difference between two "
        "methods (or an ablation and the whole) scored on the same events or pairs, one "
        "user's summed together: within about twice it, a gap is noise."
    ),
    (
        "- recstream runs on the Settings defaults plus the `RECSTREAM_*` environment "
        "(`make eval`'s `EVAL_ENV`: the replay's popularity clock and seen history), ranked as the "
        "worker publishes; how its defaults were chosen is in the hand-written part below."
    ),
)


def synthetic_lines(options: EvalOptions) -> list[str]:
    """What the synthetic streams are, when there are any."""
    if not options.synthetic_events or not options.synthetic:
        return []
    return [
        (
            f"- synthetic streams ({options.synthetic_events:,} events each, "
            f"{SYNTHETIC_USERS:,} users, {SYNTHETIC_ITEMS:,} items, tastes moving at "
            f"{DRIFT_AT:.0%}): " + "; ".join(SYNTHETIC_ABOUT[kind] for kind in options.synthetic)
        )
    ]


SYNTHETIC_ABOUT = {
    "genres": (
        "`genres`, the demo's (a Dirichlet(0.15) taste over 20 genres, Zipf 0.8 inside a genre, "
        "every taste redrawn at the drift)"
    ),
    "clusters": (
        "`clusters` (each user on 1-3 of 20 item clusters, Zipf 1.0 inside a cluster, 10% of the "
        "clicks exploring by overall item popularity, every user moving at the drift to as many "
        "clusters never liked before)"
    ),
}


def header(options: EvalOptions, seconds: float) -> list[str]:
    """Title, command, machine, date and every hyper-parameter used."""
    from worker.tools.bench.report import machine

    settings = engine_settings(options)
    device = resolve_device(settings.device)
    info = machine(device)
    model = settings.model
    kind = "a GPU" if device.type == "cuda" else "a CPU"
    negatives = model.negatives or f"unset ({default_negatives(device.type)} on {kind})"
    knn = options.knn
    return [
        "# Accuracy: prequential evaluation of recstream against peers",
        "",
        (
            "Written by `recstream eval` (worker/evaluate/), down to the hand-written part at "
            "the end, which it keeps."
        ),
        "",
        f"- command: `{options.command}` ({seconds / 60:.1f} minutes)",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        (
            f"- machine: {info['cpu']}; GPU: {info['gpu']}; torch {info['torch']}; "
            f"Python {info['python']}"
        ),
        (
            f"- protocol: micro-batches of {options.batch_size} events in time order; each "
            f"batch is scored on every user's top-{K} list from the model as it stands before "
            "the batch (seen items excluded), then learned. HR/NDCG/MRR count events of users "
            "with an earlier event and items new to them; re-consumptions are counted apart. "
            "Coverage: distinct items in any scored list / items in the stream. "
            f"{options.windows} windows in the plots."
        ),
        (
            f"- recstream (Engine from Settings, `RECSTREAM_*` applies): dim {model.dim}, "
            f"learning rate {model.learning_rate}, negatives {negatives}, l2 {model.l2}, "
            f"recent items {model.recent_items}, popularity prior weight "
            f"{model.popularity_weight} tau {model.popularity_tau:g} "
            f"({model.popularity_clock} clock), bias decay {model.bias_decay}, "
            f"transitions {model.transition_slots} slots window {model.transition_window} "
            f"decay {model.transition_decay}, co-visits {model.covisit_slots} slots, "
            f"candidates {_candidates(settings)}, "
            f"seen history {settings.ranking.seen_history}, "
            f"index {settings.index.kind}, "
            f"seed {model.seed}, device {settings.device}"
        ),
        *synthetic_lines(options),
        "- recent-popular: one peer per window, last "
        + ", ".join(f"{w:,}" for w in options.recent_windows)
        + " events",
        (
            f"- ISGD: k {options.isgd.factors}, lr {options.isgd.learning_rate}, "
            f"reg {options.isgd.regularization}, init std {options.isgd.init_std}"
        ),
        (
            f"- item-kNN (online co-occurrence): each click paired with the user's previous "
            f"{knn.window} clicks, weight {knn.decay}^(distance - 1), "
            f"{'symmetric' if knn.symmetric else 'directional'}; scored over the user's last "
            f"{knn.recent} clicks (weight {knn.recent_decay}^age) as C[j, i] / "
            f"(pop_j^{knn.beta} pop_i^{knn.alpha}), plus {knn.popularity:g} x pop_i / max pop "
            "as the tie-break"
        ),
        (
            f"- ALS (implicit, CPU): refit on all history every {options.als.every:,} events, "
            f"{options.als.factors} factors, {options.als.iterations} iterations, "
            f"reg {options.als.regularization}, alpha {options.als.alpha}, "
            f"{options.als.threads} threads; users/items not in the latest fit get most-popular"
        ),
        (
            "- events/s: the method's own time (lists + learning) over the stream, one process, "
            f"methods run one after another; torch on {options.threads} thread(s), ALS on "
            f"{options.als.threads} (BLAS on one, as implicit advises)"
        ),
        "",
        *NOTES,
    ]


def _candidates(settings: Settings) -> str:
    """Stage 1's sources and widths, and what the ranker leaves out, in one phrase."""
    c = settings.candidates
    widths = ", ".join(f"{name} {getattr(c, name)}" for name in c.sources)
    dropped = f"; ranker without {', '.join(c.ranker_drop)}" if c.ranker_drop else ""
    windows = f"last {c.covisit_window} clicks' co-visits, {c.window} clicks' successors"
    return f"({widths}; {windows}; ranker hidden {c.ranker_hidden}{dropped})"
