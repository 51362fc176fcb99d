"""Collective-variable networks, biases and samplers, and quenching to basins."""
