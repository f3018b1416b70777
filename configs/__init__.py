"""Shipped YAML configurations: sensor presets in sensors/ (installed as package data)."""
