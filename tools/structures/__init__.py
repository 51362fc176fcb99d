"""Structures at the boundary, their analysis, and the memory tools that store and find them."""
