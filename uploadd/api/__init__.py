"""The HTTP surface: one Klein class per resource family, problems in one place."""
