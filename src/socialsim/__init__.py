"""socialsim: simulate emotional-support conversations with social disclosure and awareness."""

__version__ = "0.1.0"
