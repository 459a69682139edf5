"""Command lines: ``python -m hematovision COMMAND`` and the server that ``make run`` starts."""
