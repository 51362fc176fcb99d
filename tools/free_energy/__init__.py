"""Collective variables and free energies: learn a CV, umbrella sampling, WHAM/MBAR profiles."""
