"""The OpenAI-compatible HTTP gateway: app factory, routers, auth and the request pipeline."""
