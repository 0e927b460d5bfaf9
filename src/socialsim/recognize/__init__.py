"""Recognizers: small learned models that label what a turn does, with no LLM call.

- `strategy`: which of ESConv's 8 strategies a supporter reply carries out (probabilities).
- `voice`: whether a line written for the seeker sounds like a supporter (the role check).

Both are trained on ESConv's human labels by the build scripts beside them; every stage (simulate,
evaluate, export, serve) imports them from here.
"""
