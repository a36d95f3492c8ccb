"""REST routes (``/api/v1``), WHIP/WHEP resources and the OpenAPI document built from them."""
