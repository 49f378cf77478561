"""Tokenizers: audio <-> discrete codes behind one interface (see ``base``)."""

from singsong.tokenizers.base import Tokenizer, TokenizerInfo

__all__ = ["Tokenizer", "TokenizerInfo"]
