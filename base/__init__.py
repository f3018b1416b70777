"""The ground floor, below every other privcam package: atomic writes, PNG and figure files, MP4
files, one versioned file format, one Registry, and validated settings."""
