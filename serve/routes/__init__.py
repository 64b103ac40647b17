"""The service's routes, one module per resource: the page, the service itself, items, users,
purchases and ingest jobs. Each is a thin face over one use-case of engine/application.py."""
