"""Query functions, one module per table family; they never commit."""
