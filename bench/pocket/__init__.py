"""The pocket language model: a tiny Llama-style LM built from scratch, so the bench runs offline."""
