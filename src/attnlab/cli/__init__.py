"""Command-line tools: evaluate (eval.py), translate, report, checkpoint averaging."""
