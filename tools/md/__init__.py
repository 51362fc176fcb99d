"""Molecular dynamics: the run_md tool, its engine and protocols, and trajectory analysis."""
