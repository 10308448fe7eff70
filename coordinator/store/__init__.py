"""All SQL lives in this package, one module per table family."""
