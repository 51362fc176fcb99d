"""Crystal knowledge: prototypes of the structure families and typed cells of known members."""
