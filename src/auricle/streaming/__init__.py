"""Real-time transcription over WebSocket ``/transcribe`` (the Azure-style protocol of shared STREAMING.md).

``protocol`` holds the messages, ``session`` a connection's state, ``recognizer`` and ``agreement`` the
recognition loop (VAD endpointing, LocalAgreement-2), ``scheduler`` the shared fair inference scheduler,
``handlers`` the per-message handlers and ``endpoint`` the route.
"""

__all__: list[str] = []
