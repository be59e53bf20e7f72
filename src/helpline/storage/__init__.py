"""Storage: the schema, its migrations, the group-commit writer and the queries."""
