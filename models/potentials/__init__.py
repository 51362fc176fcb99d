"""Equivariant interatomic potentials (e3nn), their training, uncertainty and ASE calculators."""
