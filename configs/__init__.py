"""Shipped YAML files, installed as package data: run files (NAME.yaml, `privcam run NAME`), sensor
presets (sensors/) and the sample video (data/pan.mp4)."""
