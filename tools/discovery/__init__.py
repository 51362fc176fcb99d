"""The hierarchical search: request reader, formula proposer, structure generator, search."""
