"""Serving the supporter: `SupporterPipeline` (safety layer + thought + reply), an OpenAI-compatible
server (`socialsim.serve.app`) and terminal chat; the typer commands are in `socialsim.cli.serve`."""

from socialsim.serve.pipeline import BadRequest, PreparedReply, ReplyOptions, SupporterPipeline, SupporterReply

__all__ = ["BadRequest", "PreparedReply", "ReplyOptions", "SupporterPipeline", "SupporterReply"]
