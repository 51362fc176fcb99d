"""matsearch models: equivariant potentials and universal calculators (no tool/agent/server imports)."""
