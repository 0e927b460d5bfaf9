"""SFT export and real LoRA steps on the embedded SmolLM2 (transformers + peft + trl, CPU)."""

import json

import pytest

from conftest import persona_dict, run_cli
from socialsim.chat_format import split_prefix
from socialsim.corpus.sft import export_sft, in_valid, sft_examples
from socialsim.schema import Dialogue, Persona, Strategy, SupporterThought, Turn, write_jsonl

SEEKER = [
    "I can't sleep before my exams.",
    "It started when my grades dropped last month.",
    "I'm afraid I'll disappoint my parents.",
    "Thank you, bye.",
]
SUPPORTER = [
    ("It sounds like the exams are weighing on you.", Strategy.REFLECTION),
    ("When did the sleepless nights begin?", Strategy.QUESTION),
    ("Your worth is more than your grades, and you are working hard.", Strategy.AFFIRMATION),
]


def dialogue(i, status="ok"):
    p = Persona.model_validate(persona_dict())
    turns = []
    for k, s in enumerate(SEEKER):
        turns.append(Turn(speaker="seeker", text=s, disclosure_layer=min(k, 2)))
        if k < len(SUPPORTER):
            text, st = SUPPORTER[k]
            th = SupporterThought(
                emotion="anxiety", intensity=4, cause="exams", need="to be heard", strategy=st, rationale="fits"
            )
            turns.append(Turn(speaker="supporter", text=text, strategy=st, thought=th))
    return Dialogue(
        id=f"d{i}",
        persona_id=p.id,
        persona=p,
        backend="t",
        model="t",
        seed=i,
        turns=turns,
        end_reason="seeker_goodbye",
        status=status,
    )


def test_sft_examples_are_prompt_completion_with_one_tag_convention():
    ex = list(sft_examples(dialogue(0)))
    assert len(ex) == 3
    first = ex[0]
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert first["completion"] == [
        {"role": "assistant", "content": "[Reflection of feelings] It sounds like the exams are weighing on you."}
    ]
    last = ex[2]
    assert [m["role"] for m in last["prompt"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["role"] for m in last["completion"]] == ["assistant"]
    # earlier supporter turns carry the same [Strategy] tag as the target
    history = [m["content"] for m in last["prompt"] if m["role"] == "assistant"]
    assert history == [
        "[Reflection of feelings] It sounds like the exams are weighing on you.",
        "[Question] When did the sleepless nights begin?",
    ]
    plain = list(sft_examples(dialogue(0), with_strategy=False))[2]
    assert plain["completion"][0]["content"] == "Your worth is more than your grades, and you are working hard."
    assert not any(m["content"].startswith("[") for m in plain["prompt"])  # none in history either
    withthought = list(sft_examples(dialogue(0), with_thought=True))
    reply, st, th = split_prefix(withthought[0]["completion"][0]["content"])
    assert st is Strategy.REFLECTION and th["cause"] == "exams" and reply.startswith("It sounds like")
    assert all(m["content"].startswith("<thought>") for m in withthought[2]["prompt"] if m["role"] == "assistant")
    assert split_prefix("[Questions] How are you?") == ("How are you?", Strategy.QUESTION, None)
    assert split_prefix("No prefix here.") == ("No prefix here.", None, None)
    assert list(sft_examples(dialogue(1, status="failed"))) == []


def test_plain_chatbot_sees_its_history_in_the_training_format():
    from socialsim.chat_format import chat_messages

    d = dialogue(0)
    ex = list(sft_examples(d))[2]
    turns = d.turns[: ex["turn"]]
    assert chat_messages(turns) == ex["prompt"]


def test_export_splits_by_dialogue_and_writes_all_formats(tmp_path):
    ds = [dialogue(i) for i in range(30)] + [dialogue(99, status="failed")]
    meta = export_sft(ds, tmp_path / "sft", valid_fraction=0.3, formats=("sft", "parquet", "hf"))
    train = [json.loads(x) for x in (tmp_path / "sft" / "train.jsonl").read_text().splitlines()]
    valid = [json.loads(x) for x in (tmp_path / "sft" / "validation.jsonl").read_text().splitlines()]
    assert len(train) + len(valid) == 90 and meta["skipped_failed_dialogues"] == 1
    assert meta["examples"] == {"train": len(train), "validation": len(valid)}
    tr_ids, va_ids = {r["dialogue_id"] for r in train}, {r["dialogue_id"] for r in valid}
    assert tr_ids and va_ids and not tr_ids & va_ids
    assert all(in_valid(i, 0.3) for i in va_ids)
    import datasets

    assert datasets.Dataset.from_parquet(str(tmp_path / "sft" / "validation.parquet")).num_rows == len(valid)
    dd = datasets.load_dataset(str(tmp_path / "sft"))  # the Hub layout: data/*.parquet + README.md card
    assert set(dd) == {"train", "validation"}
    assert dd["train"].num_rows == len(train) and dd["validation"].num_rows == len(valid)
    assert dd["train"][0]["completion"][0]["role"] == "assistant"


def test_export_cli_and_bad_input(tmp_path):
    src = tmp_path / "d.jsonl"
    write_jsonl([dialogue(i) for i in range(6)], src)
    r = run_cli("export", src, "--out", tmp_path / "e", "--format", "sft", "--format", "esconv")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "e" / "train.jsonl").exists() and (tmp_path / "e" / "esconv.json").exists()
    r = run_cli("export", src, "--out", tmp_path / "e")
    assert r.returncode == 2 and "already holds an export" in r.stderr
    r = run_cli("export", tmp_path / "missing.jsonl", "--out", tmp_path / "f")
    assert r.returncode == 2 and "not found" in r.stderr and not (tmp_path / "f").exists()
    r = run_cli("export", src, "--out", tmp_path / "g", "--format", "xml")
    assert r.returncode == 2 and "--format" in r.stderr


def test_train_bad_input(tmp_path):
    r = run_cli("train", "--data", tmp_path / "nope", "--out", tmp_path / "o")
    assert r.returncode == 2 and "--data" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    d = tmp_path / "data"
    d.mkdir()
    (d / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    r = run_cli("train", "--data", d, "--out", tmp_path / "o")
    assert r.returncode == 2 and "train.jsonl:1: field 'messages'" in r.stderr  # an older export's rows
    (d / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    r = run_cli("train", "--data", d, "--out", tmp_path / "o", "--base-model", tmp_path / "missing.gguf")
    assert r.returncode == 2 and "--base-model" in r.stderr
    row = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "user", "content": "x"}]}
    (d / "train.jsonl").write_text(json.dumps(row) + "\n")
    r = run_cli("train", "--data", d, "--out", tmp_path / "o")
    assert r.returncode == 2 and "train.jsonl:1: field 'completion'" in r.stderr


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The embedded SmolLM2 as a transformers folder, converted once for this module."""
    import os

    from socialsim.train.lora import resolve_base_model

    old = os.environ.get("SOCIALSIM_CACHE_DIR")
    os.environ["SOCIALSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("models"))
    try:
        return resolve_base_model("embedded")
    finally:
        if old is None:
            os.environ.pop("SOCIALSIM_CACHE_DIR")
        else:
            os.environ["SOCIALSIM_CACHE_DIR"] = old


# A Gemma-style template (no ChatML, no system role of its own): the trainer must use whatever the base has.
GEMMA_LIKE = (
    "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@pytest.mark.slow
@pytest.mark.parametrize("template", ["own", "gemma-like"])
def test_loss_is_on_the_completion_only_with_the_base_models_own_template(tmp_path, smollm2, template):
    """Reads the labels the real trainer's tokenisation and collator produce: every prompt token (system
    prompt and every history turn, tagged supporter replies included) is masked; the trained tokens are
    exactly the supporter reply and the template's end of turn."""
    import shutil

    from transformers import AutoTokenizer

    from socialsim.train.lora import TrainConfig, make_trainer, read_data

    base = smollm2
    if template != "own":
        base = tmp_path / "gemma-like"
        shutil.copytree(smollm2, base)
        cfg = json.loads((base / "tokenizer_config.json").read_text())
        cfg["chat_template"] = GEMMA_LIKE
        (base / "tokenizer_config.json").write_text(json.dumps(cfg))
        (base / "chat_template.jinja").unlink(missing_ok=True)
    export_sft([dialogue(0)], tmp_path / "sft", valid_fraction=0.0)
    rows, _ = read_data(tmp_path / "sft")
    trainer = make_trainer(rows, [], base, tmp_path / "out", TrainConfig(max_steps=1, max_length=1024))
    tok = trainer.processing_class
    assert tok.chat_template == AutoTokenizer.from_pretrained(str(base)).chat_template  # not replaced
    assert ("<start_of_turn>" in tok.chat_template) == (template != "own")
    for i, row in enumerate(rows):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        prompt = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert (labels[:n_prompt] == -100).all(), "a prompt (history) token is trained on"
        trained = tok.decode(ids[labels != -100])
        reply = row["completion"][0]["content"]
        assert trained.startswith(reply), (trained, reply)
        end = trained[len(reply) :].strip()
        assert end in ("<|im_end|>", "<end_of_turn>"), trained  # only the end of the turn besides the reply
        shown = tok.decode(ids[:n_prompt])
        for m in row["prompt"][1:]:
            assert m["content"] in shown and m["content"] not in trained
        if i == 2:
            assert "[Question] When did the sleepless nights begin?" in shown  # a tagged history turn, masked


@pytest.mark.slow
def test_lora_steps_reduce_loss_resume_and_reload(tmp_path):
    from socialsim.train.lora import TrainConfig, train_lora

    export_sft([dialogue(i) for i in range(8)], tmp_path / "sft", valid_fraction=0.0)
    cfg = TrainConfig(max_steps=4, save_steps=2, max_length=128, learning_rate=5e-4)
    s1 = train_lora(tmp_path / "sft", "embedded", tmp_path / "out", cfg)
    assert s1["steps"] == 4 and s1["resumed_from"] is None
    cfg.max_steps = 8
    s2 = train_lora(tmp_path / "sft", "embedded", tmp_path / "out", cfg)  # resumes from checkpoint-4
    assert s2["resumed_from"].endswith("checkpoint-4") and s2["steps"] == 8
    losses = s2["losses"]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # the loss goes down
    assert s2["loss_last_10pct"] < s2["loss_first_10pct"]
    assert (tmp_path / "out" / "loss.png").stat().st_size > 5000  # the loss curve, drawn

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(s2["base_model"])
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        untuned = base(ids).logits  # before the adapter is put into it
    tuned = PeftModel.from_pretrained(base, str(tmp_path / "out" / "adapter"))
    assert any("lora" in n for n, _ in tuned.named_parameters())
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out" / "merged"))
    assert merged.config.use_cache is True
    with torch.no_grad():
        t, m = tuned(ids).logits, merged(ids).logits
    # the merged weights answer as base + adapter: equal up to float32 rounding of the merge (which
    # depends on the CPU's kernels: up to ~1e-3 on logits of ~20 here), far below what training moved
    moved = float((t - untuned).abs().max())
    assert moved > 0.5, moved
    assert float((t - m).abs().max()) < 0.01 * moved, (float((t - m).abs().max()), moved)

    import asyncio

    from socialsim.llm import LLM, ChatRequest, make_backend

    llm = LLM(make_backend("hf", model_path=tmp_path / "out" / "merged"))
    c = asyncio.run(
        llm.complete(ChatRequest.of([{"role": "user", "content": "I can't sleep."}], seed=1, max_tokens=16))
    )
    assert c.text.strip() and c.usage.completion_tokens > 0

    # the trained model as a chatbot: `socialsim chat --backend hf --mode plain`, as `train` tells users
    from serve_helpers import run_serve_cli

    hist = tmp_path / "chat.jsonl"
    r = run_serve_cli(
        "chat",
        "--backend",
        "hf",
        "--model-path",
        tmp_path / "out" / "merged",
        "--mode",
        "plain",
        "--reply-max-tokens",
        "24",
        "--history",
        hist,
        "--safety-log",
        tmp_path / "events.jsonl",
        stdin="I can't sleep before my exams.\nI want to kill myself\n",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(x) for x in hist.read_text().splitlines()]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    normal, crisis = msgs[1], msgs[3]
    assert len(normal["content"].strip()) >= 2 and not normal["content"].lstrip().startswith("[")
    assert normal["strategy"] is None or normal["strategy"] in {s.value for s in Strategy}
    assert normal["protocol"] is False and normal["thought"] is None
    assert crisis["protocol"] is True and crisis["safety"]["category"] == "suicide"
