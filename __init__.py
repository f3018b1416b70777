"""privcam: a simulated privacy-preserving camera and the keyed networks that read its frames."""

__version__ = "0.1.0"
