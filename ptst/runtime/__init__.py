"""The model runtime training and generation share: KV-cache helpers (`cache`), token rows (`rows`), packed
per-row attention (`packing`) and the decoding loop (`decode`). It imports nothing from the stages above it."""
