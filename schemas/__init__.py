"""pydantic records for every topic and the configuration file model."""
