"""matsearch agent: planning, chat and the command-line interface on top of the tool registry."""
