"""The vocabulary: a sorted list of tokens and their integer ids, saved as JSON inside the bundle."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np

from pianocomposer.errors import PianoComposerError


class Vocabulary:
    """Tokens <-> integer ids; ids follow the sorted token order, as in the original."""

    def __init__(self, tokens: Iterable[str]):
        self.tokens: list[str] = sorted(set(tokens))

    @cached_property
    def index(self) -> dict[str, int]:
        """token -> id."""
        return {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token strings to an int32 id array; an unknown token is an error."""
        try:
            return np.fromiter((self.index[t] for t in tokens), dtype=np.int32, count=len(tokens))
        except KeyError as exc:
            raise PianoComposerError(f"token {exc.args[0]!r} is not in the model's vocabulary") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids to token strings."""
        return [self.tokens[int(i)] for i in ids]
