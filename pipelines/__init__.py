"""YAML pipelines, stage registry, runner and CLI (see the pipeline issue; not built yet)."""
