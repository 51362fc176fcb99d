"""The registry seen from outside: MCP, LangChain and the CLI, each generated from one ToolSpec."""
