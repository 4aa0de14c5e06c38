"""The database: engines and transactions, error translation, SQL helpers, models, schema
and its migrations."""
