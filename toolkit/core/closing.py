"""`Closing`: an object that holds a resource until `close()`, usable in `with`."""

from __future__ import annotations

import abc
from typing import Self


class Closing(abc.ABC):
    """`with obj:` closes it on the way out, whatever ends the block."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the resource. Calling it twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
