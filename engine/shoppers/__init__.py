"""The shopper world: shops, users, purchases and popularity, logged and synced to the store."""
