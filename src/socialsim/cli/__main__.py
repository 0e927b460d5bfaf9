"""``python -m socialsim.cli``: the same as the ``socialsim`` command."""

from socialsim.cli import main

main()
