"""Seeker and supporter agents; prompts are Jinja2 files in ``templates/``."""

from socialsim.agents.disclosure import DisclosureState
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker, supporter_voice
from socialsim.agents.supporter import Supporter

__all__ = ["DisclosureState", "Prompts", "Seeker", "Supporter", "supporter_voice"]
