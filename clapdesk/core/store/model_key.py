"""The name vectors are stored under: the encoder that made the features, plus any fine-tuned
version whose audio head projected them.

A base model's vectors are keyed by its encoder key alone; a fine-tuned version's by
"{encoder}+{version}". The key is a `str` because that is how the catalog, the index cache's
metadata and the GUI's signals carry it; this type is the one place that builds or splits it.
"""

from __future__ import annotations

SEPARATOR = "+"  # never part of a version name (versions.valid_name refuses it)


class ModelKey(str):
    """`ModelKey.of("clap@abc", "kicks")` == "clap@abc+kicks"; `.encoder`, `.version`."""

    __slots__ = ()

    @classmethod
    def of(cls, encoder: str, version: str | None = None) -> ModelKey:
        if version and SEPARATOR in version:
            raise ValueError(f"a version name cannot contain '{SEPARATOR}': {version!r}")
        return cls(f"{encoder}{SEPARATOR}{version}" if version else encoder)

    @property
    def encoder(self) -> str:
        """The encoder key: which stored features these vectors were projected from."""
        return self.partition(SEPARATOR)[0]

    @property
    def version(self) -> str | None:
        """The fine-tuned version, or None for the base model's own heads."""
        return self.partition(SEPARATOR)[2] or None
