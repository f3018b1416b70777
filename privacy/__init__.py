"""Keys, the key schedule and frame shuffling. Imports neither privcam.sensor nor privcam.nets."""

from .keys import Key, KeyFileError
from .schedule import (
    READOUT_UNITS,
    inverse_permutation,
    permutation,
    readout_inverse_permutation,
    readout_label,
    readout_permutation,
)
from .shuffle import shuffle, unshuffle

__all__ = [
    "READOUT_UNITS",
    "Key",
    "KeyFileError",
    "inverse_permutation",
    "permutation",
    "readout_inverse_permutation",
    "readout_label",
    "readout_permutation",
    "shuffle",
    "unshuffle",
]
