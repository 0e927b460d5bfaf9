"""In-process transformers backend: serves a fine-tuned model folder (e.g. ``socialsim train``'s
``merged/``) through the same protocol. Generation runs off the event loop, one call at a time.
Structured output has no grammar here: the caller's parse + repair + retry applies."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.worker import ModelThread
from socialsim.schema import Usage


class HFBackend:
    kind = "hf"

    def __init__(self, model_path: str | Path, *, n_threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        if not (self.model_path / "config.json").is_file():
            raise UserError(f"--model-path {model_path}: not a transformers model folder (no config.json)")
        self.model = self.model_path.name if self.model_path.name != "merged" else self.model_path.parent.name
        self.n_threads = n_threads
        weights = sorted(self.model_path.glob("*.safetensors"))
        h = hashlib.sha256()
        for w in weights:
            st = w.stat()
            h.update(f"{w.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        self._fingerprint = h.hexdigest()[:16]
        self._tok: Any = None
        self._lm: Any = None
        self._thread_lock = threading.Lock()
        self._thread = ModelThread("socialsim-hf")

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": str(self.model_path.resolve()), "weights": self._fingerprint}

    def _load(self) -> None:
        if self._lm is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if self.n_threads:
                torch.set_num_threads(self.n_threads)
            self._tok = AutoTokenizer.from_pretrained(str(self.model_path))
            self._lm = AutoModelForCausalLM.from_pretrained(str(self.model_path), dtype=torch.float32)
            self._lm.eval()

    def _run(self, request: ChatRequest) -> Completion:
        import torch

        with self._thread_lock:
            self._load()
            tok, lm = self._tok, self._lm
            if request.prompt is not None:  # a text completion: the prompt as written, no chat template
                ids = tok(request.prompt, return_tensors="pt")
            else:
                ids = tok.apply_chat_template(
                    request.message_dicts(), add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            n_prompt = int(ids["input_ids"].shape[1])
            if request.seed is not None:
                torch.manual_seed(request.seed)
            start = time.perf_counter()
            extra: dict[str, Any] = {}
            if request.avoid_copying:
                from transformers import LogitsProcessorList

                from socialsim.llm.nocopy import hf_processor

                extra["logits_processor"] = LogitsProcessorList([hf_processor(tok, request.avoid_copying, n_prompt)])
            with torch.no_grad():
                out = lm.generate(
                    **ids,
                    max_new_tokens=request.max_tokens,
                    do_sample=request.temperature > 0,
                    temperature=max(request.temperature, 1e-5),
                    top_p=request.top_p,
                    repetition_penalty=request.repeat_penalty,
                    pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                    **extra,
                )
            new = out[0, n_prompt:]
            text = tok.decode(new, skip_special_tokens=True)
            for s in request.stop:
                text = text.split(s, 1)[0]
            latency = time.perf_counter() - start
        return Completion(
            text=text,
            usage=Usage(prompt_tokens=n_prompt, completion_tokens=int(new.shape[0])),
            latency_s=latency,
            finish_reason="length" if int(new.shape[0]) >= request.max_tokens else "stop",
        )

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._thread.run(self._run, request)  # the model thread runs one call at a time

    def load(self) -> None:
        """Load the model now (on the model thread), so that the first call does not pay for it."""
        self._thread.call(self._load)

    async def aclose(self) -> None:
        """Nothing to release: the model stays loaded for reuse."""
