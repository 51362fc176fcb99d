"""matsearch tools: every capability as a plain typed function, registered once for MCP, LangChain and the CLI."""
