"""Universal and own potentials: relax, predict, hull, train, uncertainty, active learning."""
