"""The domain core: feed models, item builders, canonical hashing, diff, snapshot
format and the use-cases. Imports only the standard library, pydantic and orjson."""
