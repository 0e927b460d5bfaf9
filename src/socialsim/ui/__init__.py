"""A local web app for reading corpora and running blind pairwise human evaluations.

- `socialsim.ui.index`: a SQLite index (in the cache folder) over a run or a corpus file, so the
  list pages filter and page through 100k dialogues without loading them;
- `socialsim.ui.study`: blind pairwise studies (items, annotators, answers) in one SQLite file;
- `socialsim.ui.results`: win/tie/loss, sign tests and Krippendorff's alpha, JSON and CSV export;
- `socialsim.ui.app`: the FastAPI app (`create_app`), its routes in `browse` and `annotate`.
"""
