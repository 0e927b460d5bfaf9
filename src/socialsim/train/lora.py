"""LoRA supervised fine-tuning of a supporter with transformers + peft + trl.

Data: `socialsim export --format sft` writes TRL's conversational prompt–completion format
(``prompt``: system prompt + history, ``completion``: the one supporter reply). TRL tokenises
``prompt`` with the base model's *own* chat template (and its generation prompt) and
``prompt + completion`` the same way, and the loss covers the completion tokens only: no history turn
is ever trained on, whatever the model family (ChatML, Llama, Mistral, Gemma templates alike).

CPU facts this follows (measured, see README): bf16 makes CPU training 10–15x slower, so it is off;
gradient checkpointing is off for small models; a GGUF base is loaded dequantized once and kept as
safetensors in a cache folder; ``use_cache`` is set back to True before the merged model is saved.
On a GPU the same command trains a 7B model (``--bf16`` and a larger ``--batch-size``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import atomic_path, cache_dir, iter_jsonl
from socialsim.provenance import software_versions

#: The split files `train` reads (``valid.jsonl`` is the name older exports used).
VALIDATION_FILES = ("validation.jsonl", "valid.jsonl")


@dataclass
class TrainConfig:
    max_steps: int = 30
    learning_rate: float = 2e-4
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    save_steps: int = 10
    seed: int = 0
    bf16: bool = False
    #: Loss on the completion (the supporter reply) only; False trains on prompt tokens too.
    completion_only_loss: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_base_model(spec: str | Path) -> Path:
    """A folder transformers can load. ``embedded`` is the shipped SmolLM2 GGUF; a ``.gguf`` file is
    dequantized once into safetensors under the cache folder and reused afterwards."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if str(spec) == "embedded":
        from socialsim.llm.local import default_model_path

        spec = default_model_path()
    path = Path(spec)
    if not path.exists():
        raise UserError(f"--base-model {spec}: not found; give a model folder, a .gguf file or 'embedded'")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"--base-model {path}: no config.json; not a transformers model folder")
        return path
    if path.suffix != ".gguf":
        raise UserError(f"--base-model {path}: expected a model folder or a .gguf file")
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{path.stem}-{key}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, quantization_config=GgufConfig(gguf_file=path.name, dequantize=True)
    )
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model.config.quantization_config = None
    with atomic_path(target) as tmp:  # a folder: saved whole, then renamed into place
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return target


def _messages_ok(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in value)
    )


def _load_split(data: Path, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Prompt–completion rows of the first file in `names` that exists (older ``messages`` rows are
    split into prompt and completion at their last message)."""
    f = next((data / n for n in names if (data / n).exists()), None)
    if f is None:
        return []
    rows = []
    for lineno, row in iter_jsonl(f, what="a JSON object with 'prompt' and 'completion'"):
        if "messages" in row and "prompt" not in row:
            msgs = row["messages"]
            if not _messages_ok(msgs) or len(msgs) < 2 or msgs[-1]["role"] != "assistant":
                raise UserError(
                    f"{f}:{lineno}: field 'messages': expected {{role, content}} messages ending with the "
                    "assistant's reply"
                )
            row = {"prompt": msgs[:-1], "completion": msgs[-1:]}
        if not _messages_ok(row.get("prompt")):
            raise UserError(
                f"{f}:{lineno}: field 'prompt': expected a list of {{role, content}} messages "
                "(make the data with `socialsim export RUN --format sft`)"
            )
        completion = row.get("completion")
        if not _messages_ok(completion) or len(completion) != 1 or completion[0]["role"] != "assistant":
            raise UserError(f"{f}:{lineno}: field 'completion': expected one assistant message (the supporter reply)")
        rows.append({"prompt": row["prompt"], "completion": completion})
    return rows


def load_tokenizer(base: Path) -> Any:
    """The base model's tokenizer with its own chat template; a pad token when it has none."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    if not getattr(tok, "chat_template", None):
        raise UserError(
            f"--base-model {base}: its tokenizer has no chat template; SFT uses the base model's own chat format, "
            "so pick an instruct/chat model (or add a chat_template to its tokenizer_config.json)"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def make_trainer(
    train_rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    base: Path,
    out: Path,
    cfg: TrainConfig,
    callbacks: list[Any] | None = None,
) -> Any:
    """The `trl.SFTTrainer` `train_lora` runs (also what tests inspect: its tokenised data and collator)."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16 if cfg.bf16 else torch.float32)
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        bf16=cfg.bf16,
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        max_length=cfg.max_length,
        packing=False,
        completion_only_loss=cfg.completion_only_loss,
        assistant_only_loss=False,
        seed=cfg.seed,
        eval_strategy="no",
        disable_tqdm=False,
    )
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(train_rows),
        eval_dataset=datasets.Dataset.from_list(valid_rows) if valid_rows else None,
        processing_class=tok,
        peft_config=lora,
        callbacks=callbacks or [],
    )


def read_data(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, validation rows) of an SFT export folder; one-line errors."""
    if not data.is_dir():
        raise UserError(f"--data {data}: not a folder; make one with `socialsim export RUN --format sft --out DIR`")
    train_rows = _load_split(data, ("train.jsonl",))
    if not train_rows:
        raise UserError(f"--data {data}: no train.jsonl with examples; make one with `socialsim export`")
    return train_rows, _load_split(data, VALIDATION_FILES)


def train_lora(data: str | Path, base_model: str | Path, out: str | Path, cfg: TrainConfig | None = None) -> dict:
    """Train (or resume) LoRA SFT; saves ``adapter/``, ``merged/``, ``train_log.jsonl``, ``train.json``."""
    cfg = cfg or TrainConfig()
    data, out = Path(data), Path(out)
    train_rows, valid_rows = read_data(data)
    base = resolve_base_model(base_model)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "train_config.json"
    wanted = {"data": str(data.resolve()), "base": str(base), **asdict(cfg)}
    if state_file.exists():
        had = json.loads(state_file.read_text())
        diff = {
            k
            for k in ("data", "base", "lora_r", "lora_alpha", "max_length", "learning_rate")
            if had.get(k) != wanted.get(k)
        }
        if diff:
            raise UserError(
                f"{out}: holds a training run with other settings ({', '.join(sorted(diff))}); choose a new --out"
            )
    state_file.write_text(json.dumps(wanted, indent=2) + "\n")

    from transformers import TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint

    log_path = out / "train_log.jsonl"

    class LossLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if logs and ("loss" in logs or "eval_loss" in logs):
                with log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    trainer = make_trainer(train_rows, valid_rows, base, out, cfg, [LossLog()])
    tok = trainer.processing_class
    last = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").exists() else None
    eval_loss_start = None
    if valid_rows and last is None:  # the base model's validation loss (LoRA starts as a no-op)
        eval_loss_start = trainer.evaluate().get("eval_loss")
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - t0
    eval_loss = None
    if valid_rows:
        eval_loss = trainer.evaluate().get("eval_loss")
    trainer.model.save_pretrained(str(out / "adapter"))
    tok.save_pretrained(str(out / "adapter"))
    merged = trainer.model.merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(str(out / "merged"))
    tok.save_pretrained(str(out / "merged"))
    losses = [json.loads(x)["loss"] for x in log_path.read_text().splitlines() if '"loss"' in x]
    window = max(1, len(losses) // 10)
    if last is not None and (out / "train.json").exists():  # keep the base model's figure across resumes
        eval_loss_start = json.loads((out / "train.json").read_text()).get("eval_loss_start")
    summary = {
        "steps": result.global_step,
        "resumed_from": last,
        "wall_s": round(wall, 1),
        "s_per_step": round(wall / max(1, result.global_step - (int(last.rsplit("-", 1)[1]) if last else 0)), 2),
        "train_examples": len(train_rows),
        "valid_examples": len(valid_rows),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "loss_first_10pct": round(sum(losses[:window]) / window, 4) if losses else None,
        "loss_last_10pct": round(sum(losses[-window:]) / window, 4) if losses else None,
        "losses": losses,
        "eval_loss_start": eval_loss_start,
        "eval_loss": eval_loss,
        "base_model": str(base),
        "software": software_versions("hf", ("peft", "trl", "accelerate", "datasets")),
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_losses(summary, out / "loss.png")
    return summary


def plot_losses(summary: dict[str, Any], path: Path) -> Path | None:
    """Training loss per step (and its running mean) with the validation loss before and after, as a
    PNG; None when matplotlib is not installed (it comes with the [eval] extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    losses = summary["losses"]
    if not losses:
        return None
    steps = list(range(1, len(losses) + 1))
    k = max(1, len(losses) // 10)
    windows = [losses[max(0, i - k + 1) : i + 1] for i in range(len(losses))]
    smooth = [sum(w) / len(w) for w in windows]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot(steps, losses, color="#9ecae1", lw=1, label="train loss (per step)")
    ax.plot(steps, smooth, color="#08519c", lw=2, label=f"train loss (mean of {k})")
    points = [(x, summary.get(k)) for x, k in ((0, "eval_loss_start"), (len(losses), "eval_loss"))]
    points = [(x, y) for x, y in points if y is not None]
    if points:
        ax.plot(*zip(*points, strict=True), "o--", color="#e6550d", zorder=3, label="validation loss (before, after)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"LoRA SFT: {summary['train_examples']} examples, {len(losses)} steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
