"""Built-in real survey data."""
