"""Reading and writing surveys, codebooks, item sets and distribution files."""
