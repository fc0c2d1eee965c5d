"""The command line: thin Click commands over plain functions."""
