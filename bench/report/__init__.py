"""Tables, plots and reports derived from the scored per-item table (no model runs here)."""
