"""Experiment runners and their pydantic configs."""
