"""FlashInfer attention for minisgl. The plugin module (``plugin``) imports nothing heavy; FlashInfer itself
is imported only when the backend is created."""
