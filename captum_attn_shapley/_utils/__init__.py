"""Private helpers shared by the whole package: targets, digests, arrays, the cache directory."""
