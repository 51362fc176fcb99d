"""Free-energy estimators: WHAM, MBAR, refinement and replica exchange."""
