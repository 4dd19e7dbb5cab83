"""Statistics over runs: per-example outputs, the measures that recompute metrics from them,
intervals and paired tests between configurations."""
