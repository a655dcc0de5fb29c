"""The project: its database, blob store, audit trail, roles and the ML services. No Qt."""
