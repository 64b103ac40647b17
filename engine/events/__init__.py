"""The event log, the source of truth: shops, shoppers, purchases, initial popularity; its
database, its copies, and the trending score as it keeps it."""
