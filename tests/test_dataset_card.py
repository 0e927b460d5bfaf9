"""export --format hf: the Hub's parquet layout plus a README.md dataset card, loadable offline with
datasets.load_dataset(folder)."""

import json

import yaml

from conftest import run_cli
from socialsim.corpus.sft import export_sft
from socialsim.evaluate.readers import load_corpus
from socialsim.schema import write_jsonl
from test_real_formats import SSCONV
from test_sft_train import dialogue


def _card(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def test_hf_export_is_a_hub_dataset_with_a_card(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = tmp_path / "d.jsonl"
    write_jsonl([dialogue(i) for i in range(12)] + [dialogue(99, status="failed")], src)
    out = tmp_path / "hf"
    r = run_cli("export", src, "--out", out, "--format", "hf", "--valid-fraction", "0.25")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "export.json").read_text())
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    import datasets

    dd = datasets.load_dataset(str(out))
    assert {k: v.num_rows for k, v in dd.items()} == meta["examples"]
    row = dd["train"][0]
    assert row["prompt"][0]["role"] == "system" and row["completion"][0]["role"] == "assistant"

    front, body = _card(out)
    assert front["license"] == "other" and front["configs"][0]["data_files"][1]["split"] == "validation"
    assert (
        "| examples (one per supporter reply) | " + f"{meta['examples']['train']} | {meta['examples']['validation']} |"
        in body
    )
    assert "| Question | 12 | 33.3 % |" in body and "| Reflection of feelings | 12 | 33.3 % |" in body
    assert "`t:t`: 12" in body and "left out (1 here)" in body
    assert "No dialogue or persona here is taken from ESConv or SSConv" in body
    assert meta["card"]["strategies"][0] == {"strategy": "Question", "turns": 12, "share": 33.3}


def test_card_of_a_run_names_config_and_bank_and_of_ssconv_material_its_licence(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"personas": "default", "personas_sha256": "ab" * 32, "n": 12, "seed": 4}
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "format": "socialsim-run",
                "config": cfg,
                "config_hash": "h123",
                "environment": {"software": {"socialsim": "0.1.0"}},
            }
        )
    )
    from socialsim.corpus.hf_card import describe_source

    export_sft([dialogue(i) for i in range(4)], tmp_path / "a", formats=("hf",), source=describe_source(run))
    front, body = _card(tmp_path / "a")
    assert "**Persona bank:** default (sha256 `abababababababab…`)" in body
    assert '"seed": 4' in body and "h123" in body and "socialsim 0.1.0" in body
    ss = load_corpus(SSCONV).dialogues
    export_sft(ss, tmp_path / "b", formats=("hf",), valid_fraction=0.0)
    front, body = _card(tmp_path / "b")
    assert front["license"] == "cc-by-nc-4.0" and "derived from SSConv (SocialSim)" in body
    assert "| (none) |" in body  # SSConv labels no strategies
