"""Indexing a photo library: listing files, embedding, writing SQL rows and FAISS vectors."""
