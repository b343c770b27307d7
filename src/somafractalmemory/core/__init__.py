"""The domain: memories, coordinates, embeddings and the one service that commits."""
