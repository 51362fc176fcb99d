"""Which polymorph nucleates first from an amorphous phase: precursors, motifs, prediction."""
