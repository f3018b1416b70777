"""Keys, the Readout value, the key schedule and frame shuffling. Imports neither privcam.sensor nor
privcam.nets. Names are imported on first use, so that `privcam --help` starts at once."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "frames": ["KeyedFrames"],
        "keys": ["Key", "KeyFileError", "KeyMismatchError", "check_fingerprint"],
        "mask": ["AdcFormat"],
        "readout": ["PROTECTION_MODES", "READOUT_UNITS", "Readout", "ReadoutError"],
        "schedule": ["inverse_permutation", "permutation"],
        "shuffle": ["index_tensor", "key_table", "shuffle", "shuffle_codes", "unshuffle"],
    },
)
