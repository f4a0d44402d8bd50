"""Per-user adapters on the local base model: training from memory, evaluation, serving."""
