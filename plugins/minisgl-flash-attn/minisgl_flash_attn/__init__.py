"""FlashAttention for minisgl. ``plugin`` imports nothing heavy; the kernels load when the backend is built."""
