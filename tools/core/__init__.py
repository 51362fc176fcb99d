"""The framework every tool stands on: registry, context, errors, settings, jobs, executor."""
