"""Ingestion: catalog files → decoded, masked, framed images → embeddings → vector store."""
