"""``socialsim build``: rebuild the shipped learned models (the strategy recognizer and its check, the
supporter-voice recognizer, the learned safety stage) from their data. Thin shells over the build modules, which keep
the procedure and the figures: `socialsim.recognize.strategy_build`, `socialsim.recognize.voice_build`,
`socialsim.safety.learned_build`; ``python -m`` on one of them still runs its command here (`forward`).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from socialsim.cli.app import OneLineTyper

build_app = OneLineTyper(
    help="Rebuild a shipped learned model from its data: the strategy recognizer, the supporter-voice "
    "recognizer or the learned safety stage (each writes the shipped file unless given --out).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def forward(command: Callable[..., Any], argv: list[str] | None, prog: str) -> None:
    """Run one command function as a command line of its own (``python -m <build module>``): ``argv``
    (default: the process's), errors as one line and exit code 2, like every socialsim command."""
    from socialsim.cli.app import run_app

    app = OneLineTyper(add_completion=False, pretty_exceptions_enable=False)
    app.command()(command)
    run_app(functools.partial(app, args=sys.argv[1:] if argv is None else argv, prog_name=prog))  # type: ignore[arg-type]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@build_app.command("strategy-recognizer")
def strategy_recognizer(
    out: Annotated[Path | None, typer.Option(help="Output directory (default: the shipped one).")] = None,
    train: Annotated[
        Path | None, typer.Option(help="ESConv train split, JSONL (default: ../shared/data/esconv/splits/).")
    ] = None,
    valid: Annotated[Path | None, typer.Option(help="ESConv valid split, JSONL (default: beside --train's).")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs (the best on --valid is kept).")] = 3,
    lora_rank: Annotated[
        int, typer.Option(help="Rank of the LoRA adapters trained on every encoder layer; 0: train --top-layers.")
    ] = 16,
    top_layers: Annotated[
        int, typer.Option(help="With --lora-rank 0: encoder layers to train (the rest stay frozen).")
    ] = 2,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate of the adapters or layers (default 5e-4 with LoRA, 1e-4 "
                                        "without; the head's is 4x or 20x).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N utterances of each split.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of shuffling and initialisation.")] = 13,
    context_turns: Annotated[
        int, typer.Option(help="Utterances before each reply the model reads (recorded in meta.json).")
    ] = 2,
    max_length: Annotated[
        int, typer.Option(help="Input length in tokens (reply and context, the longer cut first).")
    ] = 128,
) -> None:
    """Build the strategy recognizer from ESConv's human strategy labels (about 35 minutes on 2 CPU cores;
    procedure: `socialsim.recognize.strategy_build`).

      socialsim build strategy-recognizer --out /tmp/rec --limit 300 --epochs 1   # a quick check
    """
    from socialsim.recognize.strategy import default_model_dir
    from socialsim.recognize.strategy_build import build, default_split

    build(
        out or default_model_dir(),
        train or default_split("train"),
        valid or default_split("valid"),
        epochs=epochs,
        lora_rank=lora_rank,
        top_layers=top_layers,
        lr=lr,
        limit=limit,
        seed=seed,
        context_turns=context_turns,
        max_length=max_length,
    )


@build_app.command("strategy-check")
def strategy_check(
    out: Annotated[Path | None, typer.Option(help="File to write (default: the shipped one).")] = None,
    valid: Annotated[Path | None, typer.Option(help="ESConv valid split, JSONL (default: the shared one).")] = None,
    max_fail: Annotated[
        float, typer.Option(help="Share of ESConv's human replies allowed to fail against their own gold label.")
    ] = 0.10,
) -> None:
    """Calibrate the strategy check (``simulate --strategy-check``) on ESConv's valid split: the lowest
    probability of its declared strategy a reply may have is, per strategy, the one at which at most
    --max-fail of the human replies with that gold label would fail (a minute on 2 CPU cores; procedure:
    `socialsim.recognize.strategy_check`)."""
    from socialsim.io import atomic_write_text
    from socialsim.recognize.strategy_build import default_split
    from socialsim.recognize.strategy_check import calibrate, default_check_path

    meta = calibrate(valid or default_split("valid"), max_fail=max_fail)
    path = out or default_check_path()
    atomic_write_text(path, json.dumps(meta, indent=1) + "\n")
    for label, row in meta["per_strategy"].items():
        _log(f"{label:<28} threshold {row['threshold']:.4f}  fails {row['fail_rate']:.1%} of {row['n']}")
    _log(f"{meta['human_fail_rate']:.1%} of {meta['n']} human replies fail; -> {path}")


@build_app.command("voice-recognizer")
def voice_recognizer(
    out: Annotated[Path | None, typer.Option(help="Model file to write (default: the shipped one).")] = None,
    train: Annotated[Path | None, typer.Option(help="ESConv train split, JSONL (default: the shared one).")] = None,
    valid: Annotated[Path | None, typer.Option(help="ESConv valid split, JSONL (default: the shared one).")] = None,
    target: Annotated[float, typer.Option(help="Out-of-fold share of train seeker turns rejected.")] = 0.025,
    model_weight: Annotated[float, typer.Option(help="Sample weight of each model-written reply.")] = 50.0,
    supporter_weight: Annotated[float, typer.Option(help="Sample weight of each ESConv supporter turn.")] = 0.3,
    rule_max_rate: Annotated[
        float,
        typer.Option(help="Keep a supporter-voice rule only if it matches at most this share of train seeker turns."),
    ] = 0.001,
    strategy_features: Annotated[
        bool,
        typer.Option(help="Also read the strategy recognizer's encoder output of each line (the default since "
                     "2026-12-06; --no-strategy-features: the MiniLM embeddings alone, as before)."),
    ] = True,
    measure_only: Annotated[
        bool,
        typer.Option(
            "--measure-only",
            help="Re-measure the model file at --out on the test sets (no training); store the figures.",
        ),
    ] = False,
) -> None:
    """Build the role check's voice recognizer (does a line written for the seeker sound like the supporter?;
    procedure and figures: `socialsim.recognize.voice_build`)."""
    from socialsim.recognize.strategy_build import default_split
    from socialsim.recognize.voice import default_model_path
    from socialsim.recognize.voice_build import build, remeasure

    path, valid = out or default_model_path(), valid or default_split("valid")
    if measure_only:
        remeasure(path, valid)
        return
    build(path, train or default_split("train"), valid, target=target, model_weight=model_weight,
          supporter_weight=supporter_weight, rule_max_rate=rule_max_rate, with_strategy=strategy_features)  # fmt: skip


@build_app.command("safety-model")
def safety_model(
    out: Annotated[Path | None, typer.Option(help="Model file to write (default: the shipped one).")] = None,
    cssrs: Annotated[Path | None, typer.Option(help="The C-SSRS Reddit CSV (default: the shared one).")] = None,
    esconv_train: Annotated[Path | None, typer.Option(help="ESConv train split (default: the shared one).")] = None,
    esconv_valid: Annotated[Path | None, typer.Option(help="ESConv valid split (default: the shared one).")] = None,
    labelled: Annotated[
        list[Path] | None,
        typer.Option(help="A labelled set to train on; repeat for several (default: the checked-in training sets)."),
    ] = None,
    ordinary_protocol: Annotated[float | None, typer.Option(help="Max ESConv valid protocol share.")] = None,
    benign_protocol_margin: Annotated[
        float | None, typer.Option(help="Max labelled benign protocol share above the rules' own.")
    ] = None,
    ordinary_flagged: Annotated[float | None, typer.Option(help="Max ESConv valid check-in+protocol share.")] = None,
    benign_flagged: Annotated[
        float | None, typer.Option(help="Max labelled ordinary (hard negative) check-in+protocol share.")
    ] = None,
    c: Annotated[float | None, typer.Option("--C", help="Inverse regularisation of the risk model.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the figures, write nothing.")] = False,
) -> None:
    """Build the learned safety stage's model file from real text and the checked-in labelled sets
    (procedure, data and defaults: `socialsim.safety.learned_build`)."""
    from socialsim.safety import corpora
    from socialsim.safety import learned_build as lb
    from socialsim.safety.learned import default_model_path
    from socialsim.safety.measure import labelled_path

    path = out or default_model_path()
    data = lb.build(
        path,
        cssrs=cssrs or corpora.default_cssrs(),
        esconv_train=esconv_train or corpora.default_esconv("train"),
        esconv_valid=esconv_valid or corpora.default_esconv("valid"),
        labelled=labelled or [labelled_path(n) for n in lb.TRAIN_SETS],
        ordinary_protocol=lb.ORDINARY_PROTOCOL if ordinary_protocol is None else ordinary_protocol,
        benign_protocol_margin=lb.BENIGN_PROTOCOL_MARGIN if benign_protocol_margin is None else benign_protocol_margin,
        ordinary_flagged=lb.ORDINARY_FLAGGED if ordinary_flagged is None else ordinary_flagged,
        benign_flagged=lb.BENIGN_FLAGGED if benign_flagged is None else benign_flagged,
        c=lb.C if c is None else c,
        write=not dry_run,
        log=_log,
    )
    v = data["validation"]
    heads = {h["name"]: h["thresholds_logit"] for h in data["risk_heads"]}
    print(json.dumps({"heads": heads, **v["summary"]}, indent=1, default=str))
    print(("would write " if dry_run else "wrote ") + str(path) + f" ({data['build_seconds']} s)")
