"""One meeting on a media node: routing policy (slots, floor, active speaker, slides first), the
extensions that add sources or outputs (MCU pipeline, cascade trunk), and link quality per endpoint."""
