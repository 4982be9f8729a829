"""OpenLoRA: many LoRA adapters served over one base model, paid per request, every request recorded."""
