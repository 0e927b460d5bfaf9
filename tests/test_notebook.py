"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel), in a fresh
folder, so the quickstart cannot rot: simulate on SmolLM2, the table, the plot, the evaluation against
ESConv's dev file, the dataset."""

from __future__ import annotations

import re

import nbformat
from nbclient import NotebookClient

from conftest import ESCONV_DIR, ROOT

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path):
    assert (ESCONV_DIR / "devWithStrategy_short.tsv").is_file()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    errors = [o for outs in outputs.values() for o in outs if o.output_type == "error"]
    assert not errors, errors
    text = "\n".join(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")) for outs in outputs.values()
                     for o in outs)
    assert re.search(r"Run\('runs/quickstart': \d ok, \d failed of 2; complete\)", text), text[:2000]
    assert "declared = realized on" in text
    assert any("image/png" in o.get("data", {}) for outs in outputs.values() for o in outs), "the plot is missing"
    assert "devWithStrategy_short.tsv" in text and "strategy_jsd" in text
    assert "num_rows" in text
    assert (tmp_path / "runs" / "quickstart" / "report" / "report.html").is_file()
    # a second run of the notebook reopens the run instead of failing on the existing folder
    nb2 = nbformat.read(NOTEBOOK, as_version=4)
    nb2.cells = nb2.cells[:2]
    NotebookClient(nb2, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not [o for c in nb2.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
