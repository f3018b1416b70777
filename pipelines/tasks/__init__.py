"""The task implementations: privcam.pipelines.tasks.NAME.run(ctx) for each task in catalogue.TASKS."""
