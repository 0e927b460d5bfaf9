"""``socialsim chatbot-eval``: response metrics on ESConv contexts and interactive evaluation of
supporter chatbots against simulated seekers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from socialsim.errors import UserError

console = Console()
err_console = Console(stderr=True)

chatbot_app = typer.Typer(
    help="Evaluate a supporter chatbot: response metrics on ESConv contexts, or interactive dialogues "
    "with simulated seekers scored by a judge, several chatbots side by side.",
    no_args_is_help=True,
)

ContenderOpt = Annotated[
    list[str],
    typer.Option(
        "--contender",
        help="NAME=BACKEND:TARGET[:MODE], repeatable. BACKEND local (TARGET 'embedded' = qwen2.5-1.5b, "
        "'smollm2-135m', or a .gguf), hf "
        "(TARGET a model folder, e.g. runs/lora/merged) or openai (TARGET BASE_URL|MODEL). MODE plain (the "
        "model replies directly: a trained chatbot; default) or pipeline (thought, then reply). "
        "Example: --contender base=local:embedded:plain --contender tuned=hf:runs/lora/merged",
    ),
]


def build_contender(spec: str, option: str = "--contender", prefix: str = "") -> tuple[str, Any, str]:
    """``NAME=BACKEND:TARGET[:MODE]`` → (name, LLM, mode), through `socialsim.llm.factory`; an error
    names ``option``. ``prefix`` (e.g. ``seeker=``) is put before specs that carry no name."""
    from socialsim.llm.factory import contender_llm, parse_contender

    try:
        name, cfg, mode = parse_contender(prefix + spec)
    except UserError as e:
        raise UserError(f"option {option} {str(e).removeprefix('spec ')}") from None
    return name, contender_llm(cfg), mode


@chatbot_app.command("responses")
def chatbot_responses(
    contender: Annotated[str, typer.Option(help="The chatbot, as NAME=BACKEND:TARGET[:MODE] (see `interactive`).")],
    contexts: Annotated[Path, typer.Option(help="ESConv TSV test contexts (e.g. devWithStrategy_short.tsv).")],
    out: Annotated[Path, typer.Option(help="Hypotheses JSONL to write (with the metrics in OUT.metrics.json).")],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N contexts.")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    tokenize: Annotated[
        str, typer.Option(help="Tokenizer of the metrics: nltk (ESConv papers), 13a, simple.")
    ] = "nltk",
    realized_strategy: Annotated[
        bool,
        typer.Option(
            "--realized-strategy/--no-realized-strategy",
            help="Label each reply's realized strategy with the strategy recognizer (a small learned model, no LLM; "
            "it reads the reply and its ESConv context) and score it against ESConv's gold strategy for the same "
            "context: accuracy, chance agreement, Cohen's kappa, macro-F1 (the rows get realized_strategy and "
            "realized_probs). Another model directory: env SOCIALSIM_STRATEGY_MODEL.",
        ),
    ] = True,
) -> None:
    """Reply to every ESConv context and score the replies against the references
    (BLEU-1..4, ROUGE-L, Distinct-1/2, unigram F1) and, by default, the strategy each reply carries out
    (the strategy recognizer's label) against ESConv's gold strategy for that context."""
    from socialsim.corpus.esconv_tsv import read_tsv_examples
    from socialsim.evaluate.chatbot import realized_strategy_scores, respond_to_contexts, write_rows
    from socialsim.evaluate.response_metrics import response_metrics

    if out.exists():
        raise UserError(f"{out}: already exists; choose a new --out")
    examples = read_tsv_examples(contexts)[: limit or None]
    name, llm, mode = build_contender(contender)
    rec = None
    if realized_strategy:  # a missing or broken recognizer fails here, one line, before the chatbot is asked
        from socialsim.recognize.strategy import default_recognizer

        rec = default_recognizer()
    rows = respond_to_contexts(llm, examples, mode=mode, seed=seed)  # type: ignore[arg-type]
    realized = realized_strategy_scores(rows, examples, rec) if rec is not None else None
    write_rows(rows, out)
    from dataclasses import asdict

    from socialsim.schema import parse_strategy

    m = response_metrics(
        [r["response"] for r in rows],
        [r["reference"] for r in rows],
        tokenize=tokenize,
        predicted_strategies=[parse_strategy(r["strategy"]) if r["strategy"] else None for r in rows],
        reference_strategies=[ex.strategy for ex in examples],
    )
    figures: dict[str, Any] = {}
    for k, v in asdict(m).items():
        if isinstance(v, dict):
            figures.update({f"{k} {kk}": vv for kk, vv in v.items()})
        else:
            figures[k] = v
    data = {"contender": contender, **figures, "realized_strategy": realized}
    Path(str(out) + ".metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    table = Table(title=f"{name}: {len(rows)} ESConv contexts")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in figures.items():
        table.add_row(k, f"{v:.2f}" if isinstance(v, float) else str(v))
    if realized is not None:  # the recognizer's label of each reply against ESConv's gold strategy (0-1, not x100)
        for k in ("accuracy", "chance_agreement", "kappa", "macro_f1", "n"):
            v = realized[k]
            table.add_row(f"realized strategy vs gold {k}", "n/a" if v is None else str(v))
    console.print(table)
    failed = sum(1 for r in rows if r.get("error"))
    if failed:
        err_console.print(f"[yellow]{failed} contexts got no reply (kept as empty, with the error, in {out})[/]")


@chatbot_app.command("interactive")
def chatbot_interactive(
    contenders: ContenderOpt,
    out: Annotated[Path, typer.Option(help="JSON file for the comparison, judgements and dialogues.")],
    personas: Annotated[str, typer.Option(help="Persona bank file, or 'default'.")] = "default",
    split: Annotated[
        str, typer.Option(help="Which personas: heldout (a fixed 20% of the bank, by id hash), train, or all.")
    ] = "heldout",
    n: Annotated[int, typer.Option(min=1, help="Dialogues per chatbot (one per persona).")] = 4,
    max_turns: Annotated[int, typer.Option(min=1, help="Supporter turns per dialogue at most.")] = 4,
    seeker: Annotated[str, typer.Option(help="Seeker model as BACKEND:TARGET (same for every chatbot).")] = (
        "local:embedded"
    ),
    judge: Annotated[str | None, typer.Option(help="Judge model as BACKEND:TARGET; 'none' to skip judging.")] = (
        "local:embedded"
    ),
    rubric: Annotated[str, typer.Option(help="Judge rubric: esconv or esc-eval.")] = "esconv",
    seed: Annotated[int, typer.Option(help="Seed of persona sampling and of the dialogues.")] = 0,
) -> None:
    """Each chatbot supports simulated seekers from held-out personas; the judge scores every dialogue;
    prints a comparison table (Psi-Arena / ESC-Eval style)."""
    import random

    from socialsim.evaluate.chatbot import Contender, interactive_eval
    from socialsim.simulate.engine import personas_path

    if out.exists():
        raise UserError(f"{out}: already exists; choose a new --out")
    from socialsim.personas.bank import load_personas, split_personas

    pool = split_personas(load_personas(personas_path(personas)), split)
    chosen = random.Random(seed).sample(pool, min(n, len(pool)))
    cs = [Contender(*build_contender(c)) for c in contenders]
    if not cs:
        raise UserError("option --contender: give at least one chatbot")
    seeker_llm = build_contender(seeker, "--seeker", "seeker=")[1]
    judge_llm = None if judge in (None, "none") else build_contender(judge, "--judge", "judge=")[1]
    from socialsim.recognize.strategy import default_recognizer

    default_recognizer()  # the dialogues' replies get realized strategies from it: a missing model fails now, one line
    result = interactive_eval(cs, seeker_llm, chosen, judge_llm, rubric=rubric, max_turns=max_turns, seed=seed)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    models = result["models"]
    dims = sorted({d for m in models.values() for d in m.get("judge", {})})
    table = Table(title=f"Interactive evaluation: {len(chosen)} {split} personas, judge rubric {rubric}")
    table.add_column("figure")
    for name in models:
        table.add_column(name, justify="right")
    keys = [
        "mode",
        "dialogues",
        "failed",
        "seeker_goodbye",
        "words_per_reply",
        "strategies_tagged",
        "mean_disclosure_depth",
        "judge_failed",
    ]
    for k in keys:
        table.add_row(k, *[str(m.get(k, "")) for m in models.values()])
    for d in dims:
        table.add_row(f"judge {d}", *[str(m.get("judge", {}).get(d, "")) for m in models.values()])
    console.print(table)
    console.print(f"Wrote {out}")
