"""Dataset files: where they live, downloading them, decoding and preparing them."""
